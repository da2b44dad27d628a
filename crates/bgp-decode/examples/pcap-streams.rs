//! Writes every TCP stream of a capture as a raw BGP message stream, one file per direction:
//! `OUTDIR/<n>_<src>_<dst>.bin` (used by `tests/captures/capture.sh`).
//!
//! Usage: `pcap-streams CAPTURE OUTDIR`

use std::path::PathBuf;

use anyhow::{Context, bail};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [capture, outdir] = args.as_slice() else {
        bail!("usage: pcap-streams CAPTURE OUTDIR");
    };
    let file = std::fs::read(capture).with_context(|| format!("reading {capture}"))?;
    let streams = bgp_decode::capture_streams(&file)?;
    let outdir = PathBuf::from(outdir);
    std::fs::create_dir_all(&outdir)?;
    for (n, (label, data)) in streams.iter().enumerate() {
        if data.is_empty() {
            continue;
        }
        // "10.99.0.1:179->[fd00:99::2]:40000" -> "10.99.0.1.179_fd00-99--2.40000"
        let name: String = label
            .replace("->", "_")
            .replace(['[', ']'], "")
            .chars()
            .map(|c| if c == ':' { '-' } else { c })
            .collect();
        let path = outdir.join(format!("{n:02}_{name}.bin"));
        std::fs::write(&path, data).with_context(|| format!("writing {}", path.display()))?;
        println!("{} {} bytes", path.display(), data.len());
    }
    Ok(())
}
