/*
 * `customer-cleanse`: the example cleansing plugin, in C. The same rules are
 * written in Rust, Python and JavaScript next to this one; a test feeds all
 * four the same records and asserts identical outcomes (see ../README.md).
 */
#include <string.h>

#include "sluice.h"

static const char *default_country = "US";
static bool drop_test_accounts = true;
static long min_age = 18;
static const char *tag = NULL;

static const char *const KEYS[] = {"default_country", "drop_test_accounts", "min_age", "tag"};

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Trims ASCII whitespace (a view into the same bytes). */
static sluice_str trim(sluice_str s) {
    while (s.len > 0 && is_space(s.ptr[0])) {
        s.ptr++;
        s.len--;
    }
    while (s.len > 0 && is_space(s.ptr[s.len - 1])) s.len--;
    return s;
}

/* Trims and collapses inner runs of ASCII whitespace into one space. */
static sluice_str squeeze(sluice_str s) {
    char *out = sluice_alloc(s.len + 1);
    size_t n = 0;
    bool gap = false;
    for (size_t i = 0; i < s.len; i++) {
        if (is_space(s.ptr[i])) {
            gap = n > 0;
            continue;
        }
        if (gap) out[n++] = ' ';
        gap = false;
        out[n++] = s.ptr[i];
    }
    out[n] = 0;
    sluice_str r = {out, n};
    return r;
}

static bool valid_email(sluice_str e) {
    const char *at = NULL;
    for (size_t i = 0; i < e.len; i++) {
        if (is_space(e.ptr[i])) return false;
        if (e.ptr[i] == '@') {
            if (at != NULL) return false;
            at = e.ptr + i;
        }
    }
    if (at == NULL || at == e.ptr) return false;
    sluice_str domain = {at + 1, e.len - (size_t)(at + 1 - e.ptr)};
    if (domain.len == 0 || domain.ptr[0] == '.' || domain.ptr[domain.len - 1] == '.') return false;
    return memchr(domain.ptr, '.', domain.len) != NULL;
}

static bool ends_with(sluice_str s, const char *suffix) {
    size_t n = strlen(suffix);
    return s.len >= n && memcmp(s.ptr + s.len - n, suffix, n) == 0;
}

sluice_init_result sluice_plugin_init(const sluice_config *config) {
    const char *unknown = sluice_config_unknown(config, KEYS, sizeof KEYS / sizeof KEYS[0]);
    if (unknown != NULL) return sluice_invalid_config("unknown field `%s`", unknown);
    if (sluice_config_has(config, "default_country") &&
        !sluice_config_string(config, "default_country", &default_country))
        return sluice_invalid_config("`default_country`: expected a string");
    if (sluice_config_has(config, "drop_test_accounts") &&
        !sluice_config_bool(config, "drop_test_accounts", &drop_test_accounts))
        return sluice_invalid_config("`drop_test_accounts`: expected a boolean");
    if (sluice_config_has(config, "min_age")) {
        double v;
        if (!sluice_config_number(config, "min_age", &v) || v < 0 || v != (double)(long)v)
            return sluice_invalid_config("`min_age`: expected a whole number of years");
        min_age = (long)v;
    }
    if (sluice_config_has(config, "tag") && !sluice_config_string(config, "tag", &tag))
        return sluice_invalid_config("`tag`: expected a string");
    return sluice_ready();
}

sluice_outcome sluice_plugin_process(sluice_record *r) {
    if (r->op == SLUICE_DELETE) return sluice_keep();
    sluice_str raw = {"", 0};
    sluice_get_text(r, "name", &raw);
    sluice_str name = squeeze(raw);
    if (name.len == 0) return sluice_reject_field("required", "name", "name is required");
    sluice_str email_raw;
    if (!sluice_get_text(r, "email", &email_raw))
        return sluice_reject_field("required", "email", "email is required");
    sluice_str t = trim(email_raw);
    char *email = sluice_cstr(t);
    for (char *p = email; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p + 32);
    sluice_str e = {email, t.len};
    if (!valid_email(e))
        return sluice_reject_field("invalid_email", "email", sluice_printf("`%s` is not an email address", email));
    if (drop_test_accounts && ends_with(e, "@example.com")) return sluice_drop();
    const sluice_value *age = sluice_get(r, "age");
    if (age != NULL && age->kind != SLUICE_NULL) {
        int64_t a;
        if (age->kind == SLUICE_INT) {
            a = age->as.i;
        } else if (age->kind == SLUICE_TEXT) {
            sluice_str at = trim(age->as.s);
            if (at.len == 0 || at.len > 3)
                return sluice_reject_field("invalid_age", "age", "age must be a whole number of years");
            a = 0;
            for (size_t i = 0; i < at.len; i++) {
                if (at.ptr[i] < '0' || at.ptr[i] > '9')
                    return sluice_reject_field("invalid_age", "age", "age must be a whole number of years");
                a = a * 10 + (at.ptr[i] - '0');
            }
        } else {
            return sluice_reject_field("invalid_age", "age", "age must be a whole number of years");
        }
        if (a < min_age)
            return sluice_reject_field("underage", "age",
                                       sluice_printf("age %lld is below the minimum of %ld", (long long)a, min_age));
        sluice_set(r, "age", sluice_int(a));
    }
    sluice_set(r, "name", sluice_text(name.ptr, name.len));
    sluice_set(r, "email", sluice_text(e.ptr, e.len));
    sluice_str country;
    if (sluice_get_text(r, "country", &country) && (country = trim(country)).len > 0) {
        char *up = sluice_cstr(country);
        for (char *p = up; *p; p++)
            if (*p >= 'a' && *p <= 'z') *p = (char)(*p - 32);
        sluice_set(r, "country", sluice_text(up, country.len));
    } else {
        sluice_set(r, "country", sluice_text_cstr(default_country));
    }
    sluice_str phone;
    if (sluice_get_text(r, "phone", &phone)) {
        char *digits = sluice_alloc(phone.len + 1);
        size_t n = 0;
        for (size_t i = 0; i < phone.len; i++)
            if (phone.ptr[i] >= '0' && phone.ptr[i] <= '9') digits[n++] = phone.ptr[i];
        sluice_set(r, "phone", n >= 7 ? sluice_text(digits, n) : sluice_null());
    }
    if (tag != NULL) sluice_set(r, "tag", sluice_text_cstr(tag));
    return sluice_keep();
}
