//! A directory of a snapshot, and all below it, as a .tar or .zip written to a download:
//! the walk over the catalog, the read-ahead that warms the cache with the next small
//! files, and the two writers.

use cofre::error::Error;
use cofre::{Contents, Entry};

use super::download::ToBody;
use super::App;

/// How far an archive's writer is, for the thread that reads ahead of it.
#[derive(Default)]
struct Ahead {
    /// File bytes written, and whether the writer is done.
    state: std::sync::Mutex<(u64, bool)>,
    moved: std::sync::Condvar,
    /// How far ahead of the writer files are read into the cache (`ahead_bytes`).
    limit: u64,
}

/// At most this far ahead, and a third of the cache, so what is read ahead is still there
/// when the writer comes (the cache is 32 MiB by default, shared by every download).
const AHEAD_BYTES: u64 = 12 << 20;

fn ahead_bytes(cache_mib: usize) -> u64 {
    AHEAD_BYTES.min(((cache_mib as u64) << 20) / 3)
}

impl Ahead {
    fn wrote(&self, bytes: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.0 += bytes;
        }
        self.moved.notify_all();
    }

    fn finish(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.1 = true;
        }
        self.moved.notify_all();
    }

    /// Waits until `pos` is within `limit` of the writer; false once it is done.
    fn wait_for(&self, pos: u64) -> bool {
        let Ok(mut s) = self.state.lock() else {
            return false;
        };
        while !s.1 && pos > s.0 + self.limit {
            s = match self.moved.wait(s) {
                Ok(s) => s,
                Err(_) => return false,
            };
        }
        !s.1
    }
}

/// Entries the walk may be ahead of the writer (the rest of the bound is `Ahead::limit`).
const QUEUED: usize = 4096;

/// A directory and all below it as a tar or zip on `w`. Three threads in a row: the walk
/// over the catalog (one directory held at a time, not the whole listing), the read-ahead
/// (small files into the cache, `Ahead::limit` ahead), the writer. A walk or a read that
/// fails fails the download: `ToBody` keeps the archive's last bytes (its end marker among
/// them) back, so the client sees a broken download, never a short archive that looks whole.
pub fn write_archive(
    w: &mut ToBody,
    app: &App,
    snapshot: &str,
    inner: &str,
    top: &str,
    zip: bool,
) -> std::io::Result<()> {
    let prefix_len = inner.trim_end_matches('/').len();
    let ahead = Ahead {
        limit: ahead_bytes(app.cache_mib),
        ..Ahead::default()
    };
    std::thread::scope(|s| {
        let (to_ahead, walked) = std::sync::mpsc::sync_channel::<Entry>(64);
        let (to_writer, ready) = std::sync::mpsc::sync_channel::<Entry>(QUEUED);
        let walker = s.spawn(move || {
            app.session.walk(snapshot, inner, None, &mut |e| {
                // The writer stopped (the client went away): stop walking.
                to_ahead
                    .send(e)
                    .map_err(|_| Error::InvalidArgument("download stopped".into()))
            })
        });
        s.spawn(|| read_ahead(&app.contents, walked, to_writer, &ahead));
        let items = ready.into_iter().map(|e| {
            let mut name = top.as_bytes().to_vec();
            name.extend_from_slice(&e.os_path().as_os_str().as_encoded_bytes()[prefix_len..]);
            (name, e)
        });
        let walked_whole = || match walker.join() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(std::io::Error::other(e)),
            Err(_) => Err(std::io::Error::other("the walk over the snapshot failed")),
        };
        // The read-ahead may wait on the writer: it is told the writer is done however the
        // writer ends, a panic included.
        let _done = Done(&ahead);
        let written = match zip {
            true => write_entries(
                Zip(zip::ZipWriter::new_stream(w), Default::default()),
                &app.contents,
                items,
                &ahead,
                walked_whole,
            ),
            false => write_entries(
                Tar(tar::Builder::new(w)),
                &app.contents,
                items,
                &ahead,
                walked_whole,
            ),
        };
        written
    })
}

/// Tells the read-ahead the writer is done when dropped.
struct Done<'a>(&'a Ahead);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// Passes entries from the walk to the writer, reading the small files among them into the
/// cache first, so a folder of many small files is not one disk or network wait per file
/// in the writer. A large file is left to the cache's own read-ahead within it (reading it
/// here would evict what the writer needs).
fn read_ahead(
    contents: &Contents,
    walked: std::sync::mpsc::Receiver<Entry>,
    to_writer: std::sync::mpsc::SyncSender<Entry>,
    ahead: &Ahead,
) {
    let mut pos = 0;
    for e in walked {
        if e.kind == "file" {
            if !ahead.wait_for(pos) {
                return;
            }
            if e.size < ahead.limit / 4 {
                // A failure here is met again, and reported, by the writer.
                let _ = contents.prefetch(&e);
            }
            pos += e.size;
        }
        if to_writer.send(e).is_err() {
            return;
        }
    }
}

/// An archive format: entries added one by one, then its end.
trait Archive {
    fn add(&mut self, name: Vec<u8>, e: &Entry, contents: &Contents) -> std::io::Result<()>;
    /// Writes the end (tar's zero blocks, zip's central directory).
    fn end(self) -> std::io::Result<()>;
}

/// Writes every entry, then the end only once `walked_whole` says the entries ended
/// because the walk was done (not because it failed).
fn write_entries(
    mut archive: impl Archive,
    contents: &Contents,
    items: impl Iterator<Item = (Vec<u8>, Entry)>,
    ahead: &Ahead,
    walked_whole: impl FnOnce() -> std::io::Result<()>,
) -> std::io::Result<()> {
    for (name, e) in items {
        archive.add(name, &e, contents)?;
        if e.kind == "file" {
            ahead.wrote(e.size);
        }
    }
    walked_whole()?;
    archive.end()
}

fn reader(contents: &Contents, e: &Entry) -> std::io::Result<cofre::FileReader> {
    contents.open(e, 0, u64::MAX).map_err(std::io::Error::other)
}

/// GNU tar with PAX records: nanosecond mtimes and xattrs as `tar --xattrs` reads them.
struct Tar<'a>(tar::Builder<&'a mut ToBody>);

impl Archive for Tar<'_> {
    fn add(&mut self, name: Vec<u8>, e: &Entry, contents: &Contents) -> std::io::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let b = &mut self.0;
        let n = &e.node;
        let name = std::ffi::OsStr::from_bytes(&name);
        let mut pax: Vec<(String, Vec<u8>)> = n
            .xattrs
            .iter()
            .map(|x| {
                let key = format!("SCHILY.xattr.{}", String::from_utf8_lossy(&x.name));
                (key, x.value.clone())
            })
            .collect();
        let mtime = format!("{}.{:09}", n.mtime.0, n.mtime.1);
        pax.push(("mtime".into(), mtime.into_bytes()));
        b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
        let mut h = tar::Header::new_gnu();
        h.set_mode(n.mode & 0o7777);
        h.set_uid(n.uid.into());
        h.set_gid(n.gid.into());
        let _ = h.set_username(&n.user);
        let _ = h.set_groupname(&n.group);
        h.set_mtime(n.mtime.0.max(0) as u64);
        h.set_size(0);
        let empty = std::io::empty();
        match e.kind {
            "file" => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(n.size);
                b.append_data(&mut h, name, reader(contents, e)?)
            }
            "dir" => {
                h.set_entry_type(tar::EntryType::Directory);
                b.append_data(&mut h, name, empty)
            }
            "symlink" => {
                h.set_entry_type(tar::EntryType::Symlink);
                b.append_link(&mut h, name, std::ffi::OsStr::from_bytes(&n.target))
            }
            "fifo" => {
                h.set_entry_type(tar::EntryType::Fifo);
                b.append_data(&mut h, name, empty)
            }
            "chardev" | "blockdev" => {
                h.set_entry_type(match e.kind {
                    "chardev" => tar::EntryType::Char,
                    _ => tar::EntryType::Block,
                });
                h.set_device_major(libc::major(n.rdev) as u32)?;
                h.set_device_minor(libc::minor(n.rdev) as u32)?;
                b.append_data(&mut h, name, empty)
            }
            // Sockets cannot be archived (nor restored as such).
            _ => Ok(()),
        }
    }

    fn end(self) -> std::io::Result<()> {
        self.0.into_inner().map(|_| ())
    }
}

/// Zip (zip64 when needed), stored: permission bits (0777: the writer drops the rest),
/// symlinks, directories, two-second mtimes; no owners, devices or fifos.
struct Zip<'a>(
    zip::ZipWriter<zip::write::StreamWriter<&'a mut ToBody>>,
    /// Names written: two names that are not UTF-8 can become the same string.
    std::collections::HashSet<String>,
);

impl Archive for Zip<'_> {
    fn add(&mut self, name: Vec<u8>, e: &Entry, contents: &Contents) -> std::io::Result<()> {
        let n = &e.node;
        let mut name = String::from_utf8_lossy(&name).into_owned();
        let shown = name.clone();
        for i in 1.. {
            if self.1.insert(name.clone()) {
                break;
            }
            name = format!("{shown}~{i}");
        }
        let z = &mut self.0;
        let mut opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .unix_permissions(n.mode & 0o7777)
            .large_file(n.size >= u32::MAX as u64);
        if let Some(t) = zip_time(n.mtime.0) {
            opts = opts.last_modified_time(t);
        }
        let added = match e.kind {
            "file" => {
                z.start_file(name, opts).map_err(std::io::Error::other)?;
                return std::io::copy(&mut reader(contents, e)?, z).map(|_| ());
            }
            "dir" => z.add_directory(name, opts),
            "symlink" => z.add_symlink(name, String::from_utf8_lossy(&n.target), opts),
            _ => Ok(()),
        };
        added.map_err(std::io::Error::other)
    }

    fn end(self) -> std::io::Result<()> {
        self.0.finish().map(|_| ()).map_err(std::io::Error::other)
    }
}

/// Zip's DOS time (local, two-second steps, 1980-2107): UTC here.
fn zip_time(secs: i64) -> Option<zip::DateTime> {
    let t = time::OffsetDateTime::from_unix_timestamp(secs).ok()?;
    zip::DateTime::from_date_and_time(
        t.year().try_into().ok()?,
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    )
    .ok()
}
