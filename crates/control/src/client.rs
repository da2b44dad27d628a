//! A client of the control socket (what `ternc` uses; works against BIRD too).

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use crate::reply::ReplyLine;
use crate::server::ControlError;

/// One connection.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    timeout: Duration,
    welcome: String,
}

impl Client {
    /// Connects and reads the welcome line; every later read waits at most `timeout`.
    pub async fn connect(path: &Path, timeout: Duration) -> Result<Client, ControlError> {
        let stream = tokio::time::timeout(timeout, UnixStream::connect(path))
            .await
            .map_err(|_| ControlError::Timeout)?
            .map_err(|source| ControlError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        let (rd, writer) = stream.into_split();
        let mut client = Client {
            reader: BufReader::new(rd),
            writer,
            timeout,
            welcome: String::new(),
        };
        match client.next_line().await? {
            Some(ReplyLine::Coded { code: 1, text, .. }) => client.welcome = text,
            Some(other) => return Err(ControlError::Malformed(other.text().to_string())),
            None => return Err(ControlError::Closed),
        }
        Ok(client)
    }

    /// The welcome text (`BIRD v0.1.0+tern ready.`).
    pub fn welcome(&self) -> &str {
        &self.welcome
    }

    /// Sends one command line.
    pub async fn send(&mut self, command: &str) -> Result<(), ControlError> {
        let line = format!("{}\n", command.trim_end_matches('\n'));
        self.writer
            .write_all(line.as_bytes())
            .await
            .map_err(|source| ControlError::Io {
                path: "control socket".into(),
                source,
            })
    }

    /// Sends a command and reads its whole reply (up to the line that ends it), skipping
    /// spontaneous lines.
    pub async fn command(&mut self, command: &str) -> Result<Vec<ReplyLine>, ControlError> {
        self.send(command).await?;
        let mut out = Vec::new();
        loop {
            match self.next_line().await? {
                None => return Err(ControlError::Closed),
                Some(ReplyLine::Spontaneous(_)) => {}
                Some(l @ ReplyLine::Coded { last: true, .. }) => {
                    out.push(l);
                    return Ok(out);
                }
                Some(l) => out.push(l),
            }
        }
    }

    /// The next line (`None` at end of stream). With `wait_forever`, no timeout applies
    /// (for `watch`).
    pub async fn next_line_with(
        &mut self,
        wait_forever: bool,
    ) -> Result<Option<ReplyLine>, ControlError> {
        let mut buf = String::new();
        let read = self.reader.read_line(&mut buf);
        let n = if wait_forever {
            read.await
        } else {
            tokio::time::timeout(self.timeout, read)
                .await
                .map_err(|_| ControlError::Timeout)?
        }
        .map_err(|source| ControlError::Io {
            path: "control socket".into(),
            source,
        })?;
        if n == 0 {
            return Ok(None);
        }
        let line = buf.trim_end_matches('\n');
        ReplyLine::parse(line)
            .map(Some)
            .ok_or_else(|| ControlError::Malformed(line.to_string()))
    }

    async fn next_line(&mut self) -> Result<Option<ReplyLine>, ControlError> {
        self.next_line_with(false).await
    }
}

/// The reply's error, if it ended with an 8xxx/9xxx code: `(code, text)`.
pub fn reply_error(lines: &[ReplyLine]) -> Option<(u16, String)> {
    match lines.last() {
        Some(ReplyLine::Coded { code, text, .. }) if *code >= 8000 => Some((*code, text.clone())),
        _ => None,
    }
}

/// The reply as `birdcl` prints it: each line's text, without the empty `0000` end.
pub fn reply_text(lines: &[ReplyLine]) -> String {
    let mut out = String::new();
    for l in lines {
        if let ReplyLine::Coded {
            code: 0,
            last: true,
            text,
        } = l
            && text.is_empty()
        {
            continue;
        }
        out.push_str(l.text());
        out.push('\n');
    }
    out
}
