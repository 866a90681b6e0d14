//! Sources that are not directories: standard input and a command's output (pg_dump).
//! A command that exits non-zero aborts the ingest: a failing dump is never a backup.

use std::io::Read;
use std::process::{Command, Stdio};

use super::content::ReadError;
use super::walk::Walker;
use crate::error::{Error, Result};
use crate::model::{Kind, Node, Tree};

#[derive(Clone)]
pub enum StreamSource {
    Stdin { name: String },
    Command { cmd: String, name: String },
}

impl StreamSource {
    pub fn name(&self) -> &str {
        match self {
            StreamSource::Stdin { name } | StreamSource::Command { name, .. } => name,
        }
    }
}

fn synthetic(name: &[u8], kind: Kind, mode: u32, time: (i64, u32), walker: &mut Walker) -> Node {
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    Node {
        name: name.to_vec(),
        kind,
        mode,
        uid,
        gid,
        user: walker.names.user(uid),
        group: walker.names.group(gid),
        size: 0,
        mtime: time,
        atime: time,
        ctime: time,
        inode: 0,
        dev: 0,
        nlink: 1,
        rdev: 0,
        target: Vec::new(),
        xattrs: Vec::new(),
        chunks: Vec::new(),
        blake3: None,
        subtree: None,
    }
}

fn chunk_reader<R: Read>(walker: &mut Walker, reader: R, node: &mut Node) -> Result<(), ReadError> {
    let mut hasher = blake3::Hasher::new();
    let mut chunks = Vec::new();
    let n = walker
        .chunker
        .chunk_stream(reader, 0, &mut hasher, &mut chunks)?;
    node.size = n;
    node.chunks = chunks;
    node.blake3 = Some(*hasher.finalize().as_bytes());
    walker.summary.bytes_read += n;
    walker.summary.bytes += n;
    walker.summary.files += 1;
    walker.summary.new_files += 1;
    Ok(())
}

fn run_command(walker: &mut Walker, cmd: &str, node: &mut Node) -> Result<()> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        // The repository password is ours alone: never hand it to the dump command.
        .env_remove("COFRE_PASSWORD")
        .env_remove("COFRE_PASSWORD_FILE")
        .env_remove("COFRE_PASSWORD_COMMAND")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io(format!("sh -c {cmd}"), e))?;
    let mut stderr = child.stderr.take();
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        buf
    });
    let stdout = child.stdout.take();
    let read = match stdout {
        Some(out) => chunk_reader(walker, out, node),
        None => Ok(()),
    };
    let status = child.wait().map_err(|e| Error::io(cmd, e))?;
    let err_text = String::from_utf8_lossy(&err_thread.join().unwrap_or_default()).into_owned();
    if !status.success() {
        return Err(Error::SourceCommand {
            cmd: cmd.to_string(),
            status: status.to_string(),
            stderr: err_text,
        });
    }
    if !err_text.trim().is_empty() {
        // Kept in the report (commands print it), not printed from here.
        let what = format!("`{cmd}`");
        walker.warn(
            std::path::Path::new(&what),
            format!("wrote to stderr: {}", err_text.trim_end()),
            false,
        );
    }
    match read {
        Ok(()) => Ok(()),
        Err(ReadError::Fatal(e)) => Err(e),
        Err(ReadError::Source(e)) => Err(Error::io(format!("output of `{cmd}`"), e)),
    }
}

/// The snapshot root for a stream: the file at `name`, with synthesized parent directories.
pub fn stream_root(
    walker: &mut Walker,
    src: &StreamSource,
    time: (i64, u32),
    prev_root: Option<&Tree>,
) -> Result<Tree> {
    let parts: Vec<&str> = src
        .name()
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let Some((file_name, dirs)) = parts.split_last() else {
        return Err(Error::InvalidArgument(
            "--stdin-name must name a file".into(),
        ));
    };
    if parts.contains(&"..") {
        return Err(Error::InvalidArgument(
            "--stdin-name must not contain `..`".into(),
        ));
    }
    let mut file = synthetic(
        file_name.as_bytes(),
        Kind::File,
        libc::S_IFREG | 0o600,
        time,
        walker,
    );
    // The previous dump of this set, at the same name: its chunks are the delta bases.
    let mut prev = prev_root.cloned();
    for dir in dirs {
        let node = prev.as_ref().and_then(|t| t.find(dir.as_bytes())).cloned();
        prev = walker.prev_tree(node.as_ref())?;
    }
    let prev_file = prev
        .as_ref()
        .and_then(|t| t.find(file_name.as_bytes()))
        .filter(|n| n.kind == Kind::File);
    // Its size stands for the new one's, unknown until the stream ends.
    let prev_size = prev_file.map_or(0, |n| n.size);
    walker
        .chunker
        .set_previous(prev_file.map(|n| &n.chunks[..]), prev_size)?;
    match src {
        StreamSource::Stdin { .. } => {
            match chunk_reader(walker, std::io::stdin().lock(), &mut file) {
                Ok(()) => {}
                Err(ReadError::Fatal(e)) => return Err(e),
                Err(ReadError::Source(e)) => return Err(Error::io("standard input", e)),
            }
        }
        StreamSource::Command { cmd, .. } => run_command(walker, cmd, &mut file)?,
    }
    walker.chunker.similar = None;
    let mut tree = Tree { nodes: vec![file] };
    for dir in dirs.iter().rev() {
        let id = walker.store_tree(tree)?;
        let mut node = synthetic(
            dir.as_bytes(),
            Kind::Dir,
            libc::S_IFDIR | 0o755,
            time,
            walker,
        );
        node.subtree = Some(id);
        tree = Tree { nodes: vec![node] };
    }
    Ok(tree)
}
