//! The real agents: how each is installed, a fresh HOME for it, a clean
//! environment to run it in, and a Python stand-in of a model API on
//! 127.0.0.1 (HTTPS with a test CA) that logs every request it sees.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{have, scratch, Run};

/// How long one agent run may take before the test gives up.
pub const TIMEOUT: Duration = Duration::from_secs(120);

pub struct Agent {
    pub name: &'static str,
    pub install: &'static str,
    /// What must exist before the agent's first sandboxed run
    /// (docs/presets/<agent>.md, "First run"). Usually nothing: zerobox
    /// creates a preset's missing state directories itself.
    pub dirs: &'static [&'static str],
    pub files: &'static [(&'static str, &'static str)],
}

pub const CLAUDE: Agent = Agent {
    name: "claude",
    install: "npm install -g @anthropic-ai/claude-code",
    dirs: &[],
    files: &[],
};
pub const CODEX: Agent = Agent {
    name: "codex",
    install: "npm install -g @openai/codex",
    dirs: &[],
    files: &[],
};
pub const GEMINI: Agent = Agent {
    name: "gemini",
    install: "npm install -g @google/gemini-cli",
    dirs: &[],
    files: &[],
};
pub const OPENCODE: Agent = Agent {
    name: "opencode",
    install: "npm install -g opencode-ai",
    dirs: &[],
    files: &[],
};
pub const OPENCLAW: Agent = Agent {
    name: "openclaw",
    install: "needs Node >= 24: npm install -g --prefix /opt/node24 node@24, then \
              PATH=/opt/node24/bin:$PATH npm install -g --prefix /opt/node24 openclaw, \
              and a wrapper on PATH; see .ci/run",
    dirs: &[],
    files: &[],
};

/// Installed? If not, say why the test is skipped and how to install;
/// under `ZEROBOX_REQUIRE_ALL=1` (CI, which installs every agent) a missing
/// agent fails the test instead.
pub fn installed(agent: &Agent) -> bool {
    if have(agent.name) {
        return true;
    }
    crate::common::skip(&format!("{} not installed ({})", agent.name, agent.install));
    false
}

/// A fresh HOME holding only the agent's documented first-run state.
pub fn fresh_home(agent: &Agent) -> tempfile::TempDir {
    let home = scratch();
    for d in agent.dirs {
        std::fs::create_dir_all(home.path().join(d)).unwrap();
    }
    for (f, content) in agent.files {
        std::fs::write(home.path().join(f), content).unwrap();
    }
    home
}

/// A command with only a minimal environment: nothing of the test runner's
/// (or a developer's) own environment leaks into the agent.
pub fn clean(program: &Path, home: &Path, cwd: &Path) -> Command {
    let mut c = Command::new(program);
    c.env_clear()
        .env("HOME", home)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LANG", "C.UTF-8")
        .current_dir(cwd)
        .stdin(Stdio::null());
    c
}

/// Run with a deadline; the output is read on threads so a chatty command
/// cannot block on a full pipe.
pub fn run_timeout(mut cmd: Command) -> Run {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let reader = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let out = reader(Box::new(child.stdout.take().unwrap()));
    let err = reader(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("timed out after {TIMEOUT:?}: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Run::from(std::process::Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    })
}

/// `zerobox <agent> --version` prints what the agent prints unsandboxed.
pub fn version_matches(agent: &Agent) {
    flag_matches(agent, "--version");
}

/// `zerobox <agent> --help` prints what the agent prints unsandboxed.
pub fn help_matches(agent: &Agent) {
    flag_matches(agent, "--help");
}

/// `zerobox <agent> FLAG` exits 0 and prints (stdout, or stderr where the
/// agent prints there) what `<agent> FLAG` prints unsandboxed.
fn flag_matches(agent: &Agent, flag: &str) {
    if !installed(agent) {
        return;
    }
    let (host_home, host_proj) = (scratch(), scratch());
    let program = PathBuf::from(agent.name);
    let mut direct = clean(&program, host_home.path(), host_proj.path());
    direct.arg(flag);
    let want = run_timeout(direct);
    let name = agent.name;
    assert_eq!(want.code, 0, "{name} {flag} unsandboxed: {want:?}");
    let text = |r: &Run| match r.stdout.trim() {
        "" => r.stderr.trim().to_string(),
        out => out.to_string(),
    };
    assert!(!text(&want).is_empty(), "{want:?}");

    let (home, proj) = (fresh_home(agent), scratch());
    let mut boxed = clean(&super::bin(), home.path(), proj.path());
    boxed.arg("-C").arg(proj.path()).args([name, flag]);
    let got = run_timeout(boxed);
    assert_eq!(got.code, 0, "zerobox {name} {flag}: {got:?}");
    if got.stdout.trim().is_empty() {
        // Printed on stderr: zerobox's own lines (first run) come first.
        assert!(
            got.stderr.trim().ends_with(&text(&want)),
            "zerobox {name} {flag}: {got:?}"
        );
    } else {
        assert_eq!(
            got.stdout.trim(),
            text(&want),
            "zerobox {name} {flag}: {got:?}"
        );
    }
    assert!(!got.stderr.contains("zerobox: blocked"), "{got:?}");
}

/// A stand-in of a model API (python3, HTTPS with a test CA), one of
/// [`Api`] (`STANDIN_API`). Each streams SSE like the real API: the first
/// turn of a prompt containing "say hello" asks for one shell tool call
/// (so the agent runs a command inside the sandbox), the turn with its
/// result gets the final text.
///
/// - Anthropic Messages (`POST /v1/messages`, tool `Bash`; count_tokens
///   gets a count);
/// - OpenAI Responses (`POST /v1/responses`, as Codex uses it: its shell
///   tool is `exec_command`, called from a code-mode `exec` cell when the
///   request offers one, else as a function call);
/// - the Gemini API (`POST /v1beta/models/…:streamGenerateContent`,
///   tool `run_shell_command`; generateContent gets a JSON answer);
/// - OpenAI Chat Completions (`POST /v1/chat/completions`, tool `bash`, as
///   opencode's OpenAI-compatible provider uses it; `GET /v1/models`
///   lists one model).
///
/// Anything else gets a 404 in the API's error shape. Each request is
/// appended to a JSON-lines log (method, path, headers, body).
pub const STANDIN_PY: &str = r#"
import http.server, ssl, sys, os, json, threading
LOG, ANSWER, TOOL = os.environ["STANDIN_LOG"], os.environ["STANDIN_ANSWER"], os.environ["STANDIN_TOOL"]
# The agent's shell tool: Claude Code's "Bash"; OpenClaw's "exec".
TOOL_NAME = os.environ.get("STANDIN_TOOL_NAME", "Bash")
lock = threading.Lock()
def start(model, mid):
    return ("message_start", {"type": "message_start", "message": {"id": mid, "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 12, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1}}})
def events(ev):
    return "".join("event: %s\ndata: %s\n\n" % (n, json.dumps(d)) for n, d in ev).encode()
def text_sse(model):
    return events([
        start(model, "msg_standin_text"),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": ANSWER}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": 7}}),
        ("message_stop", {"type": "message_stop"}),
    ])
def tool_sse(model):
    args = json.dumps({"command": TOOL, "description": "Check the sandbox"})
    return events([
        start(model, "msg_standin_tool"),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_standin01", "name": TOOL_NAME, "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": args}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None}, "usage": {"output_tokens": 20}}),
        ("message_stop", {"type": "message_stop"}),
    ])
def message(model):
    return json.dumps({"id": "msg_standin_json", "type": "message", "role": "assistant", "model": model, "content": [{"type": "text", "text": ANSWER}], "stop_reason": "end_turn", "stop_sequence": None, "usage": {"input_tokens": 12, "output_tokens": 7}}).encode()
API = os.environ.get("STANDIN_API", "anthropic")
def openai_sse(evs):
    return "".join("event: %s\ndata: %s\n\n" % (e["type"], json.dumps(e)) for e in evs).encode()
USAGE = {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 19}
def response(rid, model, status, output):
    r = {"id": rid, "object": "response", "created_at": 1, "status": status, "model": model, "output": output}
    if status == "completed": r["usage"] = USAGE
    return r
def tool_names(req):
    names = []
    def walk(ts):
        for t in ts or []:
            if isinstance(t, dict):
                names.append(t.get("name"))
                walk(t.get("tools"))
    walk(req.get("tools"))
    for i in req.get("input") or []:
        if isinstance(i, dict) and i.get("type") == "additional_tools":
            walk(i.get("tools"))
    return names
def responses_item(model, rid, item):
    return openai_sse([
        {"type": "response.created", "response": response(rid, model, "in_progress", [])},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": response(rid, model, "completed", [item])},
    ])
def responses_text(model):
    item = {"type": "message", "id": "msg_standin", "role": "assistant", "status": "completed", "content": [{"type": "output_text", "text": ANSWER, "annotations": []}]}
    return responses_item(model, "resp_standin_text", item)
def responses_tool(model, req):
    if "exec" in tool_names(req):
        item = {"type": "custom_tool_call", "id": "ctc_standin01", "call_id": "call_standin01", "name": "exec", "status": "completed",
                "input": "const r = await tools.exec_command({cmd: %s}); text(r);" % json.dumps(TOOL)}
    else:
        item = {"type": "function_call", "id": "fc_standin01", "call_id": "call_standin01", "name": "exec_command", "status": "completed",
                "arguments": json.dumps({"cmd": TOOL})}
    return responses_item(model, "resp_standin_tool", item)
def chat_chunks(model, deltas, finish):
    out = ""
    for d in deltas:
        out += "data: %s\n\n" % json.dumps({"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [{"index": 0, "delta": d, "finish_reason": None}]})
    out += "data: %s\n\n" % json.dumps({"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}], "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}})
    return (out + "data: [DONE]\n\n").encode()
def chat_tool(model):
    args = json.dumps({"command": TOOL, "description": "Check the sandbox"})
    return chat_chunks(model, [{"role": "assistant", "content": None, "tool_calls": [{"index": 0, "id": "call_standin01", "type": "function", "function": {"name": "bash", "arguments": args}}]}], "tool_calls")
def openai(h, req):
    model = req.get("model") or "gpt-standin"
    if h.path.split("?")[0] == "/v1/responses":
        inp = req.get("input") or []
        answered = any(isinstance(i, dict) and i.get("type") in ("function_call_output", "custom_tool_call_output") for i in inp)
        if "say hello" in json.dumps(inp) and not answered:
            return responses_tool(model, req)
        return responses_text(model)
    msgs = req.get("messages") or []
    answered = any(isinstance(m, dict) and m.get("role") == "tool" for m in msgs)
    if not req.get("stream"):
        return None
    if "say hello" in json.dumps(msgs) and not answered and any(t.get("function", {}).get("name") == "bash" for t in req.get("tools") or []):
        return chat_tool(model)
    return chat_chunks(model, [{"role": "assistant", "content": ANSWER}], "stop")
# The Gemini API (generativelanguage.googleapis.com, v1beta): the turn that
# says "say hello" gets one run_shell_command call, the turn with its
# functionResponse the text; generateContent (Gemini CLI's model router and
# next-speaker check, which parse JSON out of the text) a JSON answer.
def gemini_chunk(parts):
    return {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}], "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 7, "totalTokenCount": 19}, "modelVersion": "gemini-standin"}
def gemini(h, path, req):
    if h.command != "POST" or not path.startswith("/v1beta/models/"):
        return False
    contents = req.get("contents") or []
    answered = any("functionResponse" in p for c in contents for p in (c.get("parts") or []))
    if path.endswith(":streamGenerateContent"):
        if "say hello" in json.dumps(contents) and not answered:
            parts = [{"functionCall": {"name": "run_shell_command", "args": {"command": TOOL, "description": "Check the sandbox"}}}]
        else:
            parts = [{"text": ANSWER}]
        h.reply(200, "text/event-stream", ("data: %s\r\n\r\n" % json.dumps(gemini_chunk(parts))).encode())
    elif path.endswith(":generateContent"):
        text = json.dumps({"reasoning": "stand-in", "next_speaker": "user", "model_choice": "flash"})
        h.reply(200, "application/json", json.dumps(gemini_chunk([{"text": text}])).encode())
    elif path.endswith(":countTokens"):
        h.reply(200, "application/json", b'{"totalTokens": 12}')
    else:
        return False
    return True
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        rec = {"method": self.command, "path": self.path, "headers": [[k.lower(), v] for k, v in self.headers.items()], "body": body.decode("utf-8", "replace")}
        with lock, open(LOG, "a") as f:
            f.write(json.dumps(rec) + "\n")
        path = self.path.split("?")[0]
        try: greq = json.loads(body or b"{}")
        except ValueError: greq = {}
        if gemini(self, path, greq if isinstance(greq, dict) else {}):
            return
        if API != "anthropic":
            try: req = json.loads(body or b"{}")
            except ValueError: req = {}
            out = openai(self, req) if self.command == "POST" and path in ("/v1/responses", "/v1/chat/completions") else None
            if out is not None:
                self.reply(200, "text/event-stream", out)
            elif self.command == "GET" and path == "/v1/models" and API == "chat":
                self.reply(200, "application/json", b'{"object": "list", "data": [{"id": "standin-model", "object": "model", "created": 1, "owned_by": "standin"}]}')
            else:
                self.reply(404, "application/json", b'{"error": {"message": "not found", "type": "invalid_request_error"}}')
        elif self.command == "POST" and path == "/v1/messages":
            try: req = json.loads(body or b"{}")
            except ValueError: req = {}
            model = req.get("model") or "claude-standin"
            msgs = req.get("messages") or []
            answered = any(isinstance(c, dict) and c.get("type") == "tool_result"
                           for m in msgs if isinstance(m.get("content"), list) for c in m["content"])
            if not req.get("stream"):
                self.reply(200, "application/json", message(model))
            elif "say hello" in json.dumps(msgs) and not answered:
                self.reply(200, "text/event-stream", tool_sse(model))
            else:
                self.reply(200, "text/event-stream", text_sse(model))
        elif self.command == "POST" and path == "/v1/messages/count_tokens":
            self.reply(200, "application/json", b'{"input_tokens": 12}')
        elif self.command == "GET" and path in ("/api/hello", "/v1/oauth/hello"):
            # Claude Code's start-up checks (api.anthropic.com and
            # platform.claude.com): any 200 will do.
            self.reply(200, "application/json", b'{"message": "hello"}')
        else:
            self.reply(404, "application/json", b'{"type": "error", "error": {"type": "not_found_error", "message": "not found"}}')
    def reply(self, code, ctype, data):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", "req_standin")
        self.end_headers()
        self.wfile.write(data)
    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = any
    def log_message(self, *a): pass
class S(http.server.ThreadingHTTPServer):
    daemon_threads = True
srv = S(("127.0.0.1", int(os.environ.get("STANDIN_PORT") or 0)), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;

/// Start a server that prints the port it listens on as its first line.
fn spawn_server(mut cmd: Command) -> (Child, u16) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().expect("the server's port");
    (child, port)
}

pub struct StandIn {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request as the stand-in saw it.
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub raw: String,
}

/// Which API a [`StandIn`] speaks.
#[derive(Debug, Clone, Copy)]
pub enum Api {
    AnthropicMessages,
    OpenAiResponses,
    OpenAiChat,
}

impl Api {
    fn env(self) -> &'static str {
        match self {
            Api::AnthropicMessages => "anthropic",
            Api::OpenAiResponses => "responses",
            Api::OpenAiChat => "chat",
        }
    }
}

impl StandIn {
    pub fn start(dir: &Path, cert: &Path, key: &Path, answer: &str, tool: &str) -> StandIn {
        StandIn::spawn(Api::AnthropicMessages, dir, cert, key, answer, tool, &[])
    }

    /// A stand-in speaking `api`.
    pub fn start_api(
        api: Api,
        dir: &Path,
        cert: &Path,
        key: &Path,
        answer: &str,
        tool: &str,
    ) -> StandIn {
        StandIn::spawn(api, dir, cert, key, answer, tool, &[])
    }

    /// [`StandIn::start`] with more settings for the script
    /// (`STANDIN_TOOL_NAME`: the name of the agent's shell tool).
    pub fn start_with(
        dir: &Path,
        cert: &Path,
        key: &Path,
        answer: &str,
        tool: &str,
        env: &[(&str, &str)],
    ) -> StandIn {
        StandIn::spawn(Api::AnthropicMessages, dir, cert, key, answer, tool, env)
    }

    fn spawn(
        api: Api,
        dir: &Path,
        cert: &Path,
        key: &Path,
        answer: &str,
        tool: &str,
        env: &[(&str, &str)],
    ) -> StandIn {
        let script = dir.join("standin.py");
        let log = dir.join("requests.jsonl");
        std::fs::write(&script, STANDIN_PY).unwrap();
        let mut cmd = Command::new("python3");
        cmd.arg(&script)
            .arg(cert)
            .arg(key)
            .env("STANDIN_LOG", &log)
            .env("STANDIN_ANSWER", answer)
            .env("STANDIN_TOOL", tool)
            .env("STANDIN_API", api.env())
            .envs(env.iter().copied());
        let (child, port) = spawn_server(cmd);
        StandIn { child, port, log }
    }

    pub fn requests(&self) -> Vec<Seen> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .map(|line| {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
                Seen {
                    method: s("method"),
                    path: s("path"),
                    headers: v["headers"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|h| {
                            let h = |i: usize| h[i].as_str().unwrap().to_string();
                            (h(0), h(1))
                        })
                        .collect(),
                    body: s("body"),
                    raw: line.to_string(),
                }
            })
            .collect()
    }
}

/// `zerobox` flags that send `host:port` to a stand-in on 127.0.0.1: the
/// host allowed, `secret` bound to it too (a preset binds it to port 443
/// only), the name pinned with `--resolve`, the test CA trusted.
pub fn standin_flags(host: &str, port: u16, secret: &str, ca: &Path) -> Vec<String> {
    vec![
        format!("--allow-net={host}:{port}"),
        "--secret".into(),
        secret.into(),
        "--secret-host".into(),
        format!("{secret}={host}:{port}"),
        "--resolve".into(),
        format!("{host}:{port}:127.0.0.1"),
        "--ca-cert".into(),
        ca.display().to_string(),
    ]
}

/// The whole environment of an interactive agent session (tmux passes
/// nothing else): HOME, a plain PATH, UTF-8, a terminal, and the key.
pub fn tui_env(home: &Path, (name, key): (&str, &str)) -> Vec<(String, String)> {
    [
        ("HOME", home.display().to_string()),
        ("PATH", "/usr/local/bin:/usr/bin:/bin".into()),
        ("LANG", "C.UTF-8".into()),
        ("TERM", "xterm-256color".into()),
        (name, key.into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// `git ARGS` in `dir` with HOME = `home` (the test's, not the runner's):
/// its stdout; panics if git fails.
pub fn git(dir: &Path, home: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every request the stand-in saw carried the real key in `header`, once,
/// and no placeholder anywhere (headers, path or body).
pub fn assert_real_key_only(seen: &[Seen], header: &str, key: &str) {
    for s in seen {
        let keys: Vec<&str> = s
            .headers
            .iter()
            .filter(|(k, _)| k == header)
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(keys, [key], "{} {}", s.method, s.path);
        assert!(
            !has_placeholder(&s.raw),
            "a placeholder reached the API: {} {}",
            s.method,
            s.path
        );
    }
}

/// After a session in which the agent's shell tool ran a command like the
/// agent tests' (`echo made > FILE`, report the key as `key=…`, try
/// `~/.bashrc`): `file` in the project holds `made`, `~/.bashrc` is still
/// `bashrc`, and the output that went back to the stand-in (the request
/// whose body contains `result_marker`) says the tool saw only the
/// placeholder and was refused `~/.bashrc`. `screen` is shown on failure.
pub fn assert_tool_ran_inside(
    api: &StandIn,
    (proj, file): (&Path, &str),
    (home, bashrc): (&Path, &str),
    result_marker: &str,
    screen: &str,
) {
    let made = std::fs::read_to_string(proj.join(file)).unwrap_or_default();
    assert_eq!(made, "made\n", "{file} in the project\n{screen}");
    let rc = std::fs::read_to_string(home.join(".bashrc")).unwrap_or_default();
    assert_eq!(rc, bashrc, "~/.bashrc changed");
    let seen = api.requests();
    let result = seen
        .iter()
        .find(|s| s.body.contains(result_marker))
        .unwrap_or_else(|| panic!("no {result_marker} reached the stand-in\n{screen}"));
    assert!(result.body.contains("key=placeholder"), "{}", result.body);
    assert!(result.body.contains("bashrc=denied"), "{}", result.body);
}

/// Does `text` hold a placeholder value (`ZEROBOX_SECRET_` + 32 hex)?
pub fn has_placeholder(text: &str) -> bool {
    text.match_indices("ZEROBOX_SECRET_").any(|(i, m)| {
        let rest = &text.as_bytes()[i + m.len()..];
        rest.len() >= 32 && rest[..32].iter().all(u8::is_ascii_hexdigit)
    })
}

/// Every file, directory and symlink under `root` with its content (files)
/// or a marker, keyed by the path relative to `root`.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    pub fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                out.insert(rel, b"<dir>".to_vec());
                walk(root, &path, out);
            } else if meta.is_file() {
                out.insert(rel, std::fs::read(&path).unwrap());
            } else {
                out.insert(rel, b"<other>".to_vec());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// A stand-in of a corporate HTTP proxy (python3): every `CONNECT
/// host:port` is tunnelled to 127.0.0.1:`target` (the stand-in API) and
/// its request line logged. zerobox, started with `HTTPS_PROXY` pointing
/// here, chains its own proxy to it (docs/network.md), so an agent's
/// fixed `https://NAME` URLs on port 443 reach a stand-in on an
/// unprivileged port without root.
pub const UPSTREAM_PY: &str = r#"
import select, socket, threading, sys
target, log = int(sys.argv[1]), sys.argv[2]
def relay(c, u):
    # One loop for both directions; either side ending ends the tunnel.
    with c, u:
        while True:
            ready, _, _ = select.select([c, u], [], [])
            for src in ready:
                data = src.recv(65536)
                if not data:
                    return
                (u if src is c else c).sendall(data)
def handle(c):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = c.recv(4096)
        if not d: c.close(); return
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    line = head.split(b"\r\n")[0].decode("latin-1")
    with open(log, "a") as f: f.write(line + "\n")
    if not line.startswith("CONNECT "):
        c.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n"); c.close(); return
    u = socket.create_connection(("127.0.0.1", target))
    c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
    if rest: u.sendall(rest)
    relay(c, u)
s = socket.socket()
s.bind(("127.0.0.1", 0)); s.listen(64)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
"#;

pub struct Upstream {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Upstream {
    pub fn start(dir: &Path, target: u16) -> Upstream {
        let script = dir.join("upstream.py");
        let log = dir.join("connects.log");
        std::fs::write(&script, UPSTREAM_PY).unwrap();
        let mut cmd = Command::new("python3");
        cmd.arg(&script).arg(target.to_string()).arg(&log);
        let (child, port) = spawn_server(cmd);
        Upstream { child, port, log }
    }

    /// The `CONNECT` request lines seen, in order.
    pub fn connects(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}
