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
    run(
        Language::Js,
        Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(&dir)
            .arg(format!("componentize-qjs@{COMPONENTIZE_QJS}")),
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
