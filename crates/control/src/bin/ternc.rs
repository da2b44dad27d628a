//! `ternc` — Tern's operator CLI: BIRD's commands over the control socket, `--json` for
//! every command, and `show config`, `show peer NAME`, `watch`, `decode HEX`.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use bgp_wire::DecodeContext;
use clap::Parser;
use serde_json::Value;
use tern_control::client::{Client, reply_error, reply_text};
use tern_control::reply::{ReplyLine, code};

#[derive(Parser, Debug)]
#[command(
    name = "ternc",
    version,
    about = "Query and control a Tern daemon over its BIRD-compatible control socket",
    after_help = "Commands (keywords may be abbreviated):\n  \
        show status | show protocols [all] [NAME|\"PATTERN\"] | show route [PREFIX | for ADDR] [protocol NAME] [all] [count] [primary]\n  \
        show interfaces [summary] | show memory | show peer NAME | show config\n  \
        configure | down | disable|enable|restart NAME|\"PATTERN\"|all\n  \
        watch                 live events, one JSON object per line\n  \
        decode HEX...         decode a hex BGP message (no socket needed)"
)]
struct Args {
    /// Control socket (the IPv6 view is /var/run/calico/bird6.ctl).
    #[arg(short, long, default_value = tern_control::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Print one JSON document instead of BIRD's text.
    #[arg(long)]
    json: bool,
    /// Seconds to wait for each reply line.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// The command, e.g. `show protocols all Mesh_10_0_0_2`.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ternc: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.command.first().is_some_and(|c| c == "decode") {
        return decode(&args.command[1..].join(" "));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    rt.block_on(query(args))
}

fn decode(hex: &str) -> anyhow::Result<ExitCode> {
    let bytes = bgp_decode::parse_hex(hex).context("not hex")?;
    if bytes.is_empty() {
        bail!("no message given (usage: ternc decode HEX...)");
    }
    let mut lines = Vec::new();
    let mut sink = |v: Value| lines.push(v);
    let mut out = bgp_decode::Output::new(&mut sink);
    bgp_decode::decode_bytes(&bytes, DecodeContext::default(), &mut out);
    let errors = out.errors;
    for l in &lines {
        println!("{}", serde_json::to_string_pretty(l)?);
    }
    Ok(if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

async fn query(args: Args) -> anyhow::Result<ExitCode> {
    let timeout = Duration::from_secs(args.timeout.max(1));
    let mut client = Client::connect(&args.socket, timeout)
        .await
        .with_context(|| format!("cannot talk to {}", args.socket.display()))?;
    let command = args.command.join(" ");
    let is_watch = matches!(args.command.first().map(String::as_str), Some(w) if "watch".starts_with(w) && w.len() >= 2);
    if is_watch {
        return watch(&mut client, &command, args.json).await;
    }
    let line = if args.json {
        format!("json {command}")
    } else {
        command
    };
    let reply = client.command(&line).await?;
    if let Some((code, text)) = reply_error(&reply) {
        if args.json {
            println!(
                "{}",
                serde_json::json!({ "error": { "code": code, "message": text } })
            );
        } else {
            eprintln!("{text}");
        }
        return Ok(ExitCode::from(1));
    }
    if args.json {
        let doc = reply.iter().find_map(|l| match l {
            ReplyLine::Coded { code: c, text, .. } if *c == code::JSON => Some(text.as_str()),
            _ => None,
        });
        let Some(doc) = doc else {
            bail!("the daemon did not answer in JSON (is it BIRD rather than Tern?)");
        };
        let value: Value = serde_json::from_str(doc).context("the daemon's JSON")?;
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", reply_text(&reply));
    }
    Ok(ExitCode::SUCCESS)
}

async fn watch(client: &mut Client, command: &str, json: bool) -> anyhow::Result<ExitCode> {
    client.send(command).await?;
    while let Some(line) = client.next_line_with(true).await? {
        match line {
            ReplyLine::Spontaneous(text) => {
                if json {
                    println!("{text}");
                } else {
                    println!("{}", human_event(&text));
                }
            }
            ReplyLine::Coded { code, text, .. } if code >= 8000 => {
                eprintln!("{text}");
                return Ok(ExitCode::from(1));
            }
            _ => {}
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One event as a line for people.
fn human_event(text: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return text.to_string();
    };
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    match s("type").as_str() {
        "peer_state" => format!(
            "{} {}: {} -> {} ({})",
            s("time"),
            s("name"),
            s("from"),
            s("to"),
            s("reason")
        ),
        "peer_removed" => format!("{} {}: removed", s("time"), s("name")),
        "kernel_route" => {
            let verb = if v.get("installed").and_then(Value::as_bool) == Some(true) {
                "installed"
            } else {
                "removed"
            };
            format!("{} kernel route {} {verb}", s("time"), s("prefix"))
        }
        "kernel_route_failed" => format!(
            "{} kernel route {} failed: {}",
            s("time"),
            s("prefix"),
            s("error")
        ),
        "best_path" => match v.get("next_hop").and_then(Value::as_str) {
            Some(nh) => format!(
                "{} best path {} via {nh} from {}",
                s("time"),
                s("prefix"),
                s("from")
            ),
            None => format!("{} best path {} gone", s("time"), s("prefix")),
        },
        _ => text.to_string(),
    }
}
