//! `bgp-decode`: prints one JSON object per BGP message, one per line.
//!
//! ```text
//! bgp-decode ffffffff...            hex on the command line (spaces/colons allowed)
//! bgp-decode -                      hex on stdin
//! bgp-decode --raw FILE             a stream of binary BGP messages
//! bgp-decode --pcap FILE            TCP port 179 in a pcap/pcapng capture, both directions
//! ```
//! Exit status 1 when any message had an error (or the input could not be read), else 0.

#![forbid(unsafe_code)]

use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use bgp_decode::{Output, decode_bytes, decode_capture, parse_hex};
use bgp_wire::{AddPath, DecodeContext};
use clap::{Parser, ValueEnum};

/// Decode BGP messages to JSON lines (one object per message).
#[derive(Parser, Debug)]
#[command(name = "bgp-decode", version)]
struct Args {
    /// Hex of one or more messages (spaces, colons allowed); `-` reads hex from stdin.
    #[arg(conflicts_with_all = ["raw", "pcap"], required_unless_present_any = ["raw", "pcap"])]
    hex: Vec<String>,
    /// A file holding a stream of binary BGP messages.
    #[arg(long, value_name = "FILE", conflicts_with = "pcap")]
    raw: Option<PathBuf>,
    /// A pcap or pcapng capture: TCP port 179, both directions, each message labelled with
    /// its stream; the context comes from the OPENs seen on each connection.
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// The session uses 2-octet AS numbers (no 4-octet AS capability on one side).
    #[arg(long)]
    as2: bool,
    /// Families for which the sender adds ADD-PATH path identifiers.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "FAMILIES")]
    add_path: Vec<AddPathFamily>,
    /// Extended messages (RFC 8654) were negotiated: UPDATEs up to 65535 octets.
    #[arg(long)]
    extended_messages: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum AddPathFamily {
    #[value(name = "ipv4-unicast")]
    Ipv4Unicast,
    #[value(name = "ipv6-unicast")]
    Ipv6Unicast,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bgp-decode: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Returns whether every message decoded without error.
fn run(args: &Args) -> anyhow::Result<bool> {
    let mut add_path = AddPath::NONE;
    for f in &args.add_path {
        match f {
            AddPathFamily::Ipv4Unicast => add_path.ipv4_unicast = true,
            AddPathFamily::Ipv6Unicast => add_path.ipv6_unicast = true,
        }
    }
    let ctx = DecodeContext {
        four_octet_as: !args.as2,
        add_path,
        extended_messages: args.extended_messages,
    };
    let stdout = std::io::stdout();
    let mut writer = BufWriter::new(stdout.lock());
    let mut write_error: Option<std::io::Error> = None;
    let mut sink = |line: serde_json::Value| {
        if write_error.is_none()
            && let Err(e) = writeln!(writer, "{line}")
        {
            write_error = Some(e);
        }
    };
    let mut out = Output::new(&mut sink);
    if let Some(path) = &args.pcap {
        let file = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        decode_capture(&file, ctx, &mut out)
            .with_context(|| format!("reading capture {}", path.display()))?;
    } else if let Some(path) = &args.raw {
        let file = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        decode_bytes(&file, ctx, &mut out);
    } else {
        let text = if args.hex == ["-"] {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading hex from stdin")?;
            s
        } else {
            args.hex.join(" ")
        };
        let bytes = parse_hex(&text).context("parsing hex input")?;
        if bytes.is_empty() {
            bail!("no input: the hex string is empty");
        }
        decode_bytes(&bytes, ctx, &mut out);
    }
    let clean = out.errors == 0;
    if let Some(e) = write_error {
        // A closed pipe (`| head`) is the reader's choice, not a failure of ours.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e).context("writing output");
        }
    }
    writer.flush().ok();
    Ok(clean)
}
