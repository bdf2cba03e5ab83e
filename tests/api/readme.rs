//! The README runs as written (issue 11): every ```` ```sh ```` block of README.md, in
//! order, in one bash shell (`set -euo pipefail`, so a failing command or an unset variable
//! fails the test), in a fresh directory holding a copy of `config/` as the checkout
//! does, with the freshly built `tollgate` first on the PATH (what `cargo install --path .`
//! gives a reader).
//!
//! The convention, also stated at the top of the README's getting-started section:
//! - ```` ```sh ```` blocks are run, so every variable they use is set by an earlier one,
//!   every command must succeed, and `curl` calls use `-f` where an HTTP error must fail;
//! - ```` ```shell ```` blocks are shell too but are not run: they need what a test run does
//!   not have (`cargo install`, Docker, PostgreSQL, a browser, a build of the examples);
//! - ```` ```text ````, ```` ```toml ````, ```` ```rust ````, ```` ```python ````, ```` ```js ```` and
//!   the like are not shell.
//!
//! The one change: the server listens on a free port instead of 8080, so the test never
//! collides with anything already there: the shell gets `TOLLGATE_BIND=127.0.0.1:<port>`
//! (which `tollgate serve` reads) and `127.0.0.1:8080` in the blocks becomes that address.
//! The server-start block puts
//! `tollgate serve` in the background (`&`), as a reader does; the whole shell runs in a
//! process group of its own, which the test ends afterwards, server included.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Ample for the README's few dozen commands (about 5 s on a quiet machine).
const TIME_LIMIT: Duration = Duration::from_secs(90);

/// The ```` ```sh ```` blocks of a Markdown text, in order.
fn sh_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in markdown.lines() {
        let fence = line.trim_start();
        match &mut current {
            None if fence.starts_with("```") => {
                let info = fence.trim_start_matches('`').trim().to_owned();
                current = Some((info, String::new()));
            }
            None => {}
            Some((info, body)) => {
                if fence.starts_with("```") {
                    if info == "sh" {
                        blocks.push(std::mem::take(body));
                    }
                    current = None;
                } else {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    assert!(current.is_none(), "an unclosed code block in the README");
    blocks
}

#[test]
fn sh_blocks_are_found_in_order_and_others_are_not() {
    let text =
        "a\n```sh\necho 1\n```\n```shell\necho no\n```\n```text\nx\n```\n  ```sh\necho 2\n  ```\n";
    assert_eq!(sh_blocks(text), ["echo 1\n", "echo 2\n"]);
}

#[test]
fn the_readme_runs_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let blocks = sh_blocks(&readme);
    assert!(
        blocks.len() >= 8,
        "the README's sh blocks: {}",
        blocks.len()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();

    let mut script = String::from("set -euo pipefail\n");
    for (n, block) in blocks.iter().enumerate() {
        let block = block.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
        script.push_str(&format!("echo '>>> README block {n}' >&2\n{block}\n"));
    }
    script.push_str("echo '>>> README done' >&2\n");

    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("config")).expect("config/");
    std::fs::copy(
        root.join("config/default.toml"),
        dir.path().join("config/default.toml"),
    )
    .expect("copy config/default.toml");
    std::fs::write(dir.path().join("readme.sh"), &script).expect("write the script");
    let binary = Path::new(env!("CARGO_BIN_EXE_tollgate"));
    let path = std::env::join_paths(
        std::iter::once(binary.parent().expect("bin dir").to_owned()).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )),
    )
    .expect("PATH");

    let mut command = Command::new("bash");
    command
        .arg("readme.sh")
        .current_dir(dir.path())
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // A fresh reader's shell: none of the test's own settings.
    for name in [
        "DATABASE_URL",
        "TOLLGATE_CONFIG",
        "TOLLGATE_MASTER_KEY",
        "TOLLGATE_MASTER_KEY_FILE",
        "TOLLGATE_ISSUER",
        "TOLLGATE_LOG",
        "PGPASSWORD",
    ] {
        command.env_remove(name);
    }
    command.env("TOLLGATE_BIND", format!("127.0.0.1:{port}"));
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command.spawn().expect("run bash");
    let group = rustix::process::Pid::from_child(&child);
    let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for bash") {
            break Some(status);
        }
        if started.elapsed() > TIME_LIMIT {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Ends the background server too (and bash, after a timeout).
    let _ = rustix::process::kill_process_group(group, rustix::process::Signal::TERM);
    let _ = child.wait();
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    let log = std::fs::read_to_string(dir.path().join("tollgate.log")).unwrap_or_default();
    let report = format!(
        "--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- tollgate.log\n{log}\n--- script\n{script}"
    );
    let Some(status) = status else {
        panic!("the README did not finish within {TIME_LIMIT:?}\n{report}");
    };
    let failed_in = stderr
        .lines()
        .rfind(|line| line.starts_with(">>> README block"))
        .unwrap_or("before the first block");
    assert!(
        status.success(),
        "the README failed in {failed_in}\n{report}"
    );
    assert!(stderr.contains(">>> README done"), "{report}");
    // Positive controls: the server the README started answered, and its tokens work.
    assert!(stdout.contains("\"token_type\":\"Bearer\""), "{report}");
    assert!(
        stdout.contains("\"active\":true"),
        "the README's introspection: {report}"
    );
    assert!(
        log.contains("ready"),
        "the README's server logged its start: {report}"
    );
}

/// docker-compose.yml's entrypoint (issue 11: the README's one-liner made a new master key
/// on every run): the key file is created once, 64 hex digits that Tollgate accepts, mode
/// 0600, and kept by the next start. The script is taken from the compose file itself and
/// run with `sh`, as the container does (compose turns `$$` into `$`).
#[test]
fn compose_creates_the_master_key_once_and_keeps_it() {
    use std::os::unix::fs::PermissionsExt;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let compose = std::fs::read_to_string(root.join("docker-compose.yml")).expect("compose");
    let lines: Vec<&str> = compose.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == "entrypoint:")
        .expect("an entrypoint");
    let script_start = start
        + lines[start..]
            .iter()
            .position(|l| l.trim() == "- |")
            .expect("a block scalar script")
        + 1;
    let indent = lines[script_start].len() - lines[script_start].trim_start().len();
    let script: String = lines[script_start..]
        .iter()
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() >= indent)
        .map(|l| format!("{}\n", l.get(indent..).unwrap_or_default()))
        .collect::<String>()
        .replace("$$", "$");
    assert!(script.contains("exec tollgate"), "{script}");

    let dir = tempfile::tempdir().expect("temp dir");
    let key_file = dir.path().join("master.key");
    let binary = Path::new(env!("CARGO_BIN_EXE_tollgate"));
    let run = || {
        // The image's coreutils (head, od, tr, mv) from the system, `tollgate` this build's.
        let path = format!(
            "{}:/usr/bin:/bin",
            binary.parent().expect("bin dir").display()
        );
        let output = Command::new("/bin/sh")
            .args(["-c", &script, "tollgate", "--version"])
            .env("TOLLGATE_MASTER_KEY_FILE", &key_file)
            .env("PATH", path)
            .output()
            .expect("run sh");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(String::from_utf8_lossy(&output.stdout).starts_with("tollgate "));
        std::fs::read_to_string(&key_file).expect("the key file")
    };
    let first = run();
    assert_eq!(first.len(), 64, "{first:?}");
    assert!(first.chars().all(|c| c.is_ascii_hexdigit()), "{first:?}");
    tollgate::crypto::sealed::MasterKey::parse(&first).expect("a key Tollgate accepts");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(run(), first, "the second start keeps the key");
}

/// The deployment files agree with the README and with what the build reads.
#[test]
fn deployment_files_agree_with_the_readme() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |name: &str| std::fs::read_to_string(root.join(name)).expect(name);
    let (compose, readme, dockerfile) = (
        read("docker-compose.yml"),
        read("README.md"),
        read("Dockerfile"),
    );
    // One issuer: compose's default is the address every README example uses.
    assert!(
        compose.contains("TOLLGATE_ISSUER: ${TOLLGATE_ISSUER:-http://127.0.0.1:8080}"),
        "compose's issuer"
    );
    assert!(readme.contains("http://127.0.0.1:8080/oauth/token"));
    // The database password is passed apart from the URL, so it needs no URL-encoding.
    let url_line = compose
        .lines()
        .find(|l| l.trim_start().starts_with("DATABASE_URL:"))
        .expect("DATABASE_URL in compose");
    assert!(!url_line.contains("PASSWORD"), "{url_line}");
    assert!(compose.contains("PGPASSWORD: ${POSTGRES_PASSWORD"));
    // No master key to make up on every run.
    assert!(!compose.contains("TOLLGATE_MASTER_KEY:"));
    assert!(!readme.contains("openssl rand -hex 32) docker"));
    // The builder gets the whole checkout but what .dockerignore leaves out, which must
    // not be anything the build reads.
    assert!(dockerfile.contains("\nCOPY . .\n"));
    let needed = [
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
        "src",
        "migrations",
        "templates",
        "static",
        "config",
        "verify",
        "tests",
        "benches",
        "examples",
    ];
    for pattern in read(".dockerignore").lines().map(str::trim) {
        if pattern.is_empty() || pattern.starts_with('#') {
            continue;
        }
        let name = pattern.trim_start_matches("**/").trim_end_matches('/');
        assert!(
            !needed.contains(&name) && !matches!(name, "*" | "**" | "."),
            ".dockerignore leaves out {pattern}, which the build needs"
        );
    }
}
