//! `snapshots` and `ls`: listings from the catalog, as text or JSON.

use std::os::unix::ffi::OsStrExt;

use serde::Serialize;

use super::{split_spec, Context};
use crate::catalog::{Catalog, NodeRow};
use crate::error::{Error, Result};
use crate::ingest::format_time;
use crate::model::Kind;

#[derive(Serialize)]
struct SnapshotJson<'a> {
    id: &'a str,
    short_id: &'a str,
    set: &'a str,
    time: String,
    tags: &'a [String],
    paths: &'a [String],
    hostname: &'a str,
    username: &'a str,
    files: u64,
    bytes: u64,
    bytes_added: u64,
}

pub fn snapshots(ctx: &Context, set: Option<&str>) -> Result<i32> {
    let (_repo, cat) = ctx.open_synced()?;
    let rows = cat.snapshots(set)?;
    let list: Vec<_> = rows
        .iter()
        .map(|r| SnapshotJson {
            id: &r.id,
            short_id: &r.id[..8],
            set: &r.manifest.set,
            time: format_time(r.manifest.time),
            tags: &r.manifest.tags,
            paths: &r.manifest.paths,
            hostname: &r.manifest.hostname,
            username: &r.manifest.username,
            files: r.manifest.summary.files,
            bytes: r.manifest.summary.bytes,
            bytes_added: r.manifest.summary.bytes_added,
        })
        .collect();
    if ctx.json {
        return ctx.print_json(&list).map(|_| 0);
    }
    println!(
        "{:<8}  {:<20}  {:<12}  {:>8}  {:>12}  {:<12}  paths",
        "id", "time", "set", "files", "bytes", "tags"
    );
    for s in &list {
        println!(
            "{:<8}  {:<20}  {:<12}  {:>8}  {:>12}  {:<12}  {}",
            s.short_id,
            &s.time[..s.time.len().min(19)],
            s.set,
            s.files,
            s.bytes,
            s.tags.join(","),
            s.paths.join(" ")
        );
    }
    println!("{} snapshots", list.len());
    Ok(0)
}

#[derive(Serialize)]
struct NodeJson {
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    path_hex: Option<String>,
    #[serde(rename = "type")]
    kind: &'static str,
    mode: String,
    uid: u32,
    gid: u32,
    user: String,
    group: String,
    size: u64,
    mtime: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    blake3: Option<String>,
}

fn to_json(path: &[u8], r: &NodeRow) -> NodeJson {
    let n = &r.node;
    let lossy = String::from_utf8_lossy(path).into_owned();
    NodeJson {
        path_hex: std::str::from_utf8(path)
            .is_err()
            .then(|| hex::encode(path)),
        path: lossy,
        kind: n.kind.as_str(),
        mode: format!("{:o}", n.mode & 0o7777),
        uid: n.uid,
        gid: n.gid,
        user: n.user.clone(),
        group: n.group.clone(),
        size: n.size,
        mtime: format_time(n.mtime),
        target: (n.kind == Kind::Symlink).then(|| String::from_utf8_lossy(&n.target).into_owned()),
        blake3: n.blake3.map(hex::encode),
    }
}

/// Every node below `start` (depth first), with its full path.
fn walk(cat: &Catalog, tree: i64, prefix: &[u8], out: &mut Vec<(Vec<u8>, NodeRow)>) -> Result<()> {
    for child in cat.children(tree)? {
        let mut path = prefix.to_vec();
        path.push(b'/');
        path.extend_from_slice(&child.node.name);
        let sub = child.subtree_rowid;
        out.push((path.clone(), child));
        if let Some(sub) = sub {
            walk(cat, sub, &path, out)?;
        }
    }
    Ok(())
}

pub fn ls(ctx: &Context, spec: &str, set: Option<&str>) -> Result<i32> {
    let (_repo, cat) = ctx.open_synced()?;
    let (snap, path) = split_spec(spec);
    let row = cat.resolve(snap, set)?;
    let mut tree = row.root_rowid;
    let mut prefix = Vec::new();
    let mut out = Vec::new();
    for part in std::path::Path::new(path)
        .iter()
        .filter(|p| p.as_bytes() != b"/")
    {
        let child = cat
            .child(tree, part.as_bytes())?
            .ok_or_else(|| Error::NoSuchPath(path.to_string()))?;
        prefix.push(b'/');
        prefix.extend_from_slice(part.as_bytes());
        let sub = child.subtree_rowid;
        out = vec![(prefix.clone(), child)];
        match sub {
            Some(s) => tree = s,
            None => break,
        }
    }
    let dir_listing = out.last().is_none_or(|(_, r)| r.subtree_rowid.is_some());
    if dir_listing {
        walk(&cat, tree, &prefix, &mut out)?;
    }
    if ctx.json {
        let list: Vec<_> = out.iter().map(|(p, r)| to_json(p, r)).collect();
        return ctx.print_json(&list).map(|_| 0);
    }
    for (p, r) in &out {
        let j = to_json(p, r);
        let link = j.target.map(|t| format!(" -> {t}")).unwrap_or_default();
        println!(
            "{:<8} {:>5} {:<8} {:<8} {:>12} {} {}{}",
            j.kind,
            j.mode,
            j.user,
            j.group,
            j.size,
            &j.mtime[..j.mtime.len().min(19)],
            j.path,
            link
        );
    }
    Ok(0)
}
