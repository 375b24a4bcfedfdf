//! `sluice plugin setup LANG`: installs the pinned tools a language needs,
//! into the tools directory ([`super::tools_dir`]) where a package manager
//! of the user's allows (pip, npm), or as Debian packages (C).

use std::path::Path;
use std::process::Command;

use super::{BuildError, CLANG, COMPONENTIZE_PY, COMPONENTIZE_QJS, Language, tools_dir};

/// Debian packages the C toolchain needs.
pub const C_PACKAGES: [&str; 4] = [
    "clang-19",
    "lld-19",
    "wasi-libc",
    "libclang-rt-19-dev-wasm32",
];

/// Installs what `lang` needs, unless it is there already. Returns a line
/// saying what was done.
pub fn setup(lang: Language) -> Result<String, BuildError> {
    match lang {
        Language::Rust => rust(),
        Language::Python => python(),
        Language::Js => js(),
        Language::C => c(),
    }
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BuildError {
    let path = path.to_path_buf();
    move |source| BuildError::Io { what, path, source }
}

fn run(lang: Language, cmd: &mut Command) -> Result<(), BuildError> {
    super::run_tool(lang, Path::new("."), cmd)
}

fn rust() -> Result<String, BuildError> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(io("cannot run", Path::new("rustup")))?;
    if String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == "wasm32-wasip2")
    {
        return Ok("rust: the wasm32-wasip2 target is installed".into());
    }
    run(
        Language::Rust,
        Command::new("rustup").args(["target", "add", "wasm32-wasip2"]),
    )?;
    Ok("rust: installed the wasm32-wasip2 target".into())
}

fn python() -> Result<String, BuildError> {
    let venv = tools_dir().join("py");
    let tool = venv.join("bin/componentize-py");
    if let Ok(out) = Command::new(&tool).arg("--version").output()
        && String::from_utf8_lossy(&out.stdout).contains(COMPONENTIZE_PY)
    {
        return Ok(format!(
            "python: componentize-py {COMPONENTIZE_PY} is installed ({})",
            tool.display()
        ));
    }
    if !venv.join("bin/pip").is_file() {
        std::fs::create_dir_all(tools_dir()).map_err(io("cannot create", &tools_dir()))?;
        run(
            Language::Python,
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
        )?;
    }
    run(
        Language::Python,
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("componentize-py=={COMPONENTIZE_PY}")),
    )?;
    Ok(format!(
        "python: installed componentize-py {COMPONENTIZE_PY} ({})",
        tool.display()
    ))
}

/// The npm project `sluice plugin setup js` installs: componentize-qjs
/// pinned by a lock file.
const JS_TOOLS: [(&str, &str); 2] = [
    ("package.json", include_str!("js-tools/package.json")),
    (
        "package-lock.json",
        include_str!("js-tools/package-lock.json"),
    ),
];

fn js() -> Result<String, BuildError> {
    let dir = tools_dir().join("js");
    let manifest = dir.join("node_modules/componentize-qjs/package.json");
    let installed = std::fs::read_to_string(&manifest)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["version"].as_str().map(str::to_string));
    if installed.as_deref() == Some(COMPONENTIZE_QJS) {
        return Ok(format!(
            "js: componentize-qjs {COMPONENTIZE_QJS} is installed ({})",
            dir.display()
        ));
    }
    if which::which("npm").is_err() {
        return Err(BuildError::ToolMissing {
            tool: "npm (Node.js)".into(),
            lang: Language::Js,
            install: "apt-get install nodejs npm".into(),
        });
    }
    std::fs::create_dir_all(&dir).map_err(io("cannot create", &dir))?;
    // `npm ci` installs exactly what the lock file pins (versions and
    // integrity hashes), nothing newer.
    for (name, text) in JS_TOOLS {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(io("cannot write", &path))?;
    }
    run(
        Language::Js,
        Command::new("npm")
            .current_dir(&dir)
            .args(["ci", "--no-audit", "--no-fund", "--silent"]),
    )?;
    Ok(format!(
        "js: installed componentize-qjs {COMPONENTIZE_QJS} ({})",
        dir.display()
    ))
}

fn c_ready() -> bool {
    which::which(CLANG).is_ok()
        && (which::which("wasm-ld-19").is_ok() || which::which("wasm-ld").is_ok())
        && Path::new("/usr/lib/wasm32-wasi/libc.a").is_file()
        && Path::new("/usr/lib/llvm-19/lib/clang/19/lib/wasi").is_dir()
}

fn c() -> Result<String, BuildError> {
    if c_ready() {
        return Ok("c: clang-19, lld-19, wasi-libc are installed".into());
    }
    let install = format!("apt-get install -y {}", C_PACKAGES.join(" "));
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let mut cmd = if is_root {
        Command::new("apt-get")
    } else if which::which("sudo").is_ok() {
        let mut c = Command::new("sudo");
        c.args(["-n", "apt-get"]);
        c
    } else {
        return Err(BuildError::ToolMissing {
            tool: "the C toolchain".into(),
            lang: Language::C,
            install: format!("sudo {install}"),
        });
    };
    cmd.args(["install", "-y", "-q"])
        .args(C_PACKAGES)
        .env("DEBIAN_FRONTEND", "noninteractive");
    if run(Language::C, &mut cmd).is_err() {
        // The package lists may be missing on a fresh machine.
        let mut update = if is_root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.args(["-n", "apt-get"]);
            c
        };
        run(Language::C, update.args(["update", "-q"]))?;
        run(Language::C, &mut cmd)?;
    }
    if !c_ready() {
        return Err(BuildError::ToolMissing {
            tool: "the C toolchain".into(),
            lang: Language::C,
            install,
        });
    }
    Ok(format!("c: installed {}", C_PACKAGES.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_js_lock_file_pins_the_componentize_qjs_the_toolchain_expects() {
        let lock: serde_json::Value =
            serde_json::from_str(JS_TOOLS[1].1).expect("package-lock.json is JSON");
        let packages = &lock["packages"];
        assert_eq!(
            packages["node_modules/componentize-qjs"]["version"].as_str(),
            Some(COMPONENTIZE_QJS)
        );
        assert!(
            packages["node_modules/componentize-qjs"]["integrity"]
                .as_str()
                .is_some_and(|i| i.starts_with("sha512-"))
        );
        // `npm ci` refuses a lock out of step with package.json.
        let manifest: serde_json::Value =
            serde_json::from_str(JS_TOOLS[0].1).expect("package.json is JSON");
        assert_eq!(manifest["dependencies"], packages[""]["dependencies"]);
        assert_eq!(
            manifest["dependencies"]["componentize-qjs"].as_str(),
            Some(COMPONENTIZE_QJS)
        );
    }
}
