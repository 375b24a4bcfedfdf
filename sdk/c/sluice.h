/*
 * sluice.h: write Sluice transform plugins in C.
 *
 * A plugin defines two functions:
 *
 *   sluice_init_result sluice_plugin_init(const sluice_config *config);
 *   sluice_outcome     sluice_plugin_process(sluice_record *record);
 *
 * The SDK (sluice.c) decodes each batch the host sends into records whose
 * strings point into the batch (no copies), calls sluice_plugin_process for
 * each, encodes the outcomes, and frees everything the batch used. Memory
 * from sluice_alloc, sluice_printf, sluice_text and the record functions
 * lives until the batch is done; memory allocated during init lives as long
 * as the plugin. Never free() it. `sluice plugin build` compiles plugin.c
 * with this SDK (clang-19, wasi-libc) into a component.
 *
 * The concepts and names are those of the Rust SDK: records with fields, a
 * key, headers, stream and operation; outcomes keep / emit / drop / reject.
 */
#ifndef SLUICE_H
#define SLUICE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A string or byte slice: not NUL-terminated. */
typedef struct sluice_str {
    const char *ptr;
    size_t len;
} sluice_str;

/** The kind of a value. */
typedef enum sluice_kind {
    SLUICE_NULL = 0,      /**< no value */
    SLUICE_BOOL = 1,      /**< as.b */
    SLUICE_INT = 2,       /**< as.i, 64-bit signed */
    SLUICE_FLOAT = 3,     /**< as.f, 64-bit float */
    SLUICE_TEXT = 4,      /**< as.s, UTF-8 */
    SLUICE_BYTES = 5,     /**< as.s, raw bytes */
    SLUICE_TIMESTAMP = 6, /**< as.i, microseconds since 1970-01-01T00:00:00Z */
    SLUICE_JSON = 7,      /**< as.s, a JSON object or array as text */
} sluice_kind;

/** One typed value. */
typedef struct sluice_value {
    sluice_kind kind;
    union {
        bool b;
        int64_t i;
        double f;
        sluice_str s;
    } as;
} sluice_value;

/** What happened at the source. */
typedef enum sluice_op {
    SLUICE_INSERT = 0,
    SLUICE_UPDATE = 1,
    SLUICE_DELETE = 2,
    SLUICE_SNAPSHOT = 3,
} sluice_op;

/** A named value. */
typedef struct sluice_field {
    sluice_str name;
    sluice_value value;
} sluice_field;

/** A header: a name and bytes. */
typedef struct sluice_header {
    sluice_str name;
    sluice_str value;
} sluice_header;

/**
 * One record. Read the members freely; change the record only through the
 * functions below (they note that it changed, so an unchanged record is not
 * re-encoded).
 */
typedef struct sluice_record {
    sluice_op op;
    sluice_str stream;
    sluice_str position;
    bool has_event_time;
    int64_t event_time; /**< microseconds since the epoch, if has_event_time */
    sluice_value key;
    sluice_header *headers;
    size_t header_count;
    sluice_field *fields;
    size_t field_count;
    /* private */
    size_t field_cap_;
    size_t header_cap_;
    bool changed_;
} sluice_record;

/** What a plugin decides for a record. */
typedef enum sluice_outcome_kind {
    SLUICE_KEEP = 0,   /**< pass the record on, possibly changed */
    SLUICE_EMIT = 1,   /**< replace it by `count` records */
    SLUICE_DROP = 2,   /**< filter it out on purpose (counted) */
    SLUICE_REJECT = 3, /**< refuse it: it goes to the dead-letter sink */
} sluice_outcome_kind;

/** An outcome; build it with sluice_keep(), sluice_drop(), sluice_reject()... */
typedef struct sluice_outcome {
    sluice_outcome_kind kind;
    sluice_record **records; /**< SLUICE_EMIT */
    size_t count;            /**< SLUICE_EMIT */
    const char *code;        /**< SLUICE_REJECT: snake_case code */
    const char *field;       /**< SLUICE_REJECT: the field at fault, or NULL */
    const char *message;     /**< SLUICE_REJECT: a message a person can act on */
} sluice_outcome;

/** The plugin's config: the pipeline's `config` table as JSON text. */
typedef struct sluice_config {
    const char *json;
    size_t len;
} sluice_config;

/** What init decided. */
typedef struct sluice_init_result {
    int status; /**< 0 ready, 1 invalid config, 2 other failure */
    const char *message;
} sluice_init_result;

/** Log levels. */
typedef enum sluice_level {
    SLUICE_TRACE = 0,
    SLUICE_DEBUG = 1,
    SLUICE_INFO = 2,
    SLUICE_WARN = 3,
    SLUICE_ERROR = 4,
} sluice_level;

/* ---- what the plugin implements ---- */

/** Called once per instance with the config. Return sluice_ready(), or
 *  sluice_invalid_config("key `x`: ...") naming the key at fault.
 *  Optional: without it the plugin starts with any config. */
sluice_init_result sluice_plugin_init(const sluice_config *config);

/** Decides one record. */
sluice_outcome sluice_plugin_process(sluice_record *record);

/* ---- init results ---- */
sluice_init_result sluice_ready(void);
sluice_init_result sluice_invalid_config(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
sluice_init_result sluice_init_failed(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- config (top-level keys of the JSON object) ---- */
bool sluice_config_has(const sluice_config *c, const char *key);
/** A string value, decoded and NUL-terminated (lives as long as the plugin). */
bool sluice_config_string(const sluice_config *c, const char *key, const char **out);
bool sluice_config_number(const sluice_config *c, const char *key, double *out);
bool sluice_config_bool(const sluice_config *c, const char *key, bool *out);
/** The first top-level key not among `known` (decoded), or NULL when all are
 *  known; "" when the config is not a JSON object. */
const char *sluice_config_unknown(const sluice_config *c, const char *const *known, size_t n);

/* ---- values ---- */
static inline sluice_value sluice_null(void) { sluice_value v; v.kind = SLUICE_NULL; v.as.i = 0; return v; }
static inline sluice_value sluice_bool(bool b) { sluice_value v; v.kind = SLUICE_BOOL; v.as.b = b; return v; }
static inline sluice_value sluice_int(int64_t i) { sluice_value v; v.kind = SLUICE_INT; v.as.i = i; return v; }
static inline sluice_value sluice_float(double f) { sluice_value v; v.kind = SLUICE_FLOAT; v.as.f = f; return v; }
static inline sluice_value sluice_timestamp(int64_t us) { sluice_value v; v.kind = SLUICE_TIMESTAMP; v.as.i = us; return v; }
/** Text (copied). */
sluice_value sluice_text(const char *s, size_t len);
/** Text from a NUL-terminated string (copied). */
sluice_value sluice_text_cstr(const char *s);
/** Bytes (copied). */
sluice_value sluice_bytes(const void *p, size_t len);
/** A JSON object or array (copied). */
sluice_value sluice_json(const char *s, size_t len);

/* ---- reading a record ---- */
/** The value of a field, or NULL when absent. */
const sluice_value *sluice_get(const sluice_record *r, const char *name);
/** True (and *out) when the field is text. */
bool sluice_get_text(const sluice_record *r, const char *name, sluice_str *out);
/** True when the field is an integer. */
bool sluice_get_int(const sluice_record *r, const char *name, int64_t *out);
/** True when the field is a float or an integer. */
bool sluice_get_float(const sluice_record *r, const char *name, double *out);
/** True when the field is a boolean. */
bool sluice_get_bool(const sluice_record *r, const char *name, bool *out);
/** True when the field is absent or null. */
bool sluice_is_null(const sluice_record *r, const char *name);
/** The first header called `name`, or NULL. */
const sluice_str *sluice_header_get(const sluice_record *r, const char *name);

/* ---- changing a record ---- */
/** Sets a field (added at the end when new). `name` is copied. */
void sluice_set(sluice_record *r, const char *name, sluice_value v);
/** Removes a field; false when absent. */
bool sluice_remove(sluice_record *r, const char *name);
/** Renames a field in place; false when `from` is absent. */
bool sluice_rename(sluice_record *r, const char *from, const char *to);
void sluice_set_stream(sluice_record *r, const char *stream);
void sluice_set_key(sluice_record *r, sluice_value key);
void sluice_set_op(sluice_record *r, sluice_op op);
void sluice_add_header(sluice_record *r, const char *name, const void *value, size_t len);
/** A new empty record (for emit). */
sluice_record *sluice_record_new(const char *stream);
/** A copy of a record (for emit). */
sluice_record *sluice_record_copy(const sluice_record *r);

/* ---- outcomes ---- */
sluice_outcome sluice_keep(void);
sluice_outcome sluice_drop(void);
/** Refuse the record; the strings are copied. */
sluice_outcome sluice_reject(const char *code, const char *message);
sluice_outcome sluice_reject_field(const char *code, const char *field, const char *message);
/** Replace the record by `count` records (the array is copied). */
sluice_outcome sluice_emit(sluice_record **records, size_t count);

/* ---- memory, strings, logging ---- */
/** Memory that lives until the batch is done (or, in init, for good). */
void *sluice_alloc(size_t n);
/** A formatted, NUL-terminated string in sluice_alloc memory. */
char *sluice_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/** A NUL-terminated copy of a slice. */
char *sluice_cstr(sluice_str s);
/** True when the slice equals the NUL-terminated string. */
bool sluice_str_eq(sluice_str s, const char *c);
/** Writes a line to the Sluice log. */
void sluice_log(sluice_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif
#endif
