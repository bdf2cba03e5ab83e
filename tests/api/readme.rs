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
