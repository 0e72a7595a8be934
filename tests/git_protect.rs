//! Git runs the command's code on the host? Never. Each test lets a real
//! sandboxed shell commit (objects, refs, index and logs stay writable),
//! then try to plant something the *host's* next git would run or be
//! redirected by; then the host runs real `git status`, `git commit` and
//! `git checkout`, and a marker file the planted code would create must
//! not exist. Run as root and unprivileged (scripts/test).

mod common;

use std::path::Path;
use std::process::Command;

use common::{have, real, scratch, zerobox, Run};

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

/// Known limit, announced: a rename on the HOST over a protected path
/// (here `git config` on the host, which writes `config.lock` and renames
/// it over `.git/config`) detaches the sandbox's read-only bind over it
/// (Linux removes a mount whose mount point is renamed over in another
/// namespace), and from then on the command can write the new file. It
/// cannot cause the rename itself, but it can wait for one. zerobox must
/// not stay silent about it: after the run, a protected path that was
/// replaced during the run is named, with what to do.
#[test]
fn a_protected_path_replaced_on_the_host_mid_run_is_reported() {
    if !git_available() {
        return;
    }
    let (dir, home) = (scratch(), scratch());
    let (dir_p, home_p) = (real(dir.path()), real(home.path()));
    repo(&dir_p, &home_p);
    let child = zerobox()
        .current_dir(&dir_p)
        .env_clear()
        .env("HOME", &home_p)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .args(["--allow-write=.", "--", "sh", "-c"])
        .arg("echo started > started; sleep 3; printf '[core]\\n\\tfsmonitor = evil\\n' >> .git/config 2>/dev/null; echo done")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn zerobox");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !dir_p.join("started").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The user, on the host, during the run.
    let r = git(&dir_p, &home_p, &["config", "user.name", "someone else"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = Run::from(child.wait_with_output().unwrap());
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr
            .contains(".git/config was replaced on the host during the run"),
        "{r:?}"
    );
}
