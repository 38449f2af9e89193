//! `silt checkpoint create|list|renew|delete`. `create` and `renew` open the database
//! read-only (a running writer is not fenced); `list` and `delete` only touch the
//! `checkpoints/` objects.

use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result};
use silt::{CheckpointInfo, CheckpointKind, Settings};

use crate::cli::CheckpointCommand;
use crate::commands::{bare_storage, with_reader};
use crate::exit;
use crate::shared::StoreStack;

pub async fn run(
    url: &str,
    stack: StoreStack,
    settings: Settings,
    cmd: CheckpointCommand,
) -> Result<u8> {
    match cmd {
        CheckpointCommand::Create { name, lifetime } => {
            with_reader(url, stack, settings, |db| async move {
                let cp = db
                    .create_checkpoint(&name, lifetime)
                    .await
                    .with_context(|| format!("creating checkpoint {name}"))?;
                print_one("created", &cp)
            })
            .await
        }
        CheckpointCommand::Renew { name, lifetime } => {
            with_reader(url, stack, settings, |db| async move {
                let cp = db
                    .renew_checkpoint(&name, lifetime)
                    .await
                    .with_context(|| format!("renewing checkpoint {name}"))?;
                print_one("renewed", &cp)
            })
            .await
        }
        CheckpointCommand::List { json } => {
            let storage = bare_storage(url, stack)?;
            let list = silt::inspect::checkpoints(&storage)
                .await
                .context("listing checkpoints")?;
            let mut out = std::io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut out, &list)?;
                writeln!(out)?;
            } else {
                write_table(&mut out, &list)?;
            }
            out.flush()?;
            Ok(exit::OK)
        }
        CheckpointCommand::Delete { name } => {
            let storage = bare_storage(url, stack)?;
            silt::inspect::delete_checkpoint(&storage, &name)
                .await
                .with_context(|| format!("deleting checkpoint {name}"))?;
            println!("deleted checkpoint {name}");
            Ok(exit::OK)
        }
    }
}

fn print_one(what: &str, cp: &CheckpointInfo) -> Result<u8> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{what} checkpoint {}: manifest {}, seq {}, expires {}",
        cp.name,
        cp.manifest_id,
        cp.seq,
        expires(cp.expires_at_ms)
    )?;
    out.flush()?;
    Ok(exit::OK)
}

fn time(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

fn expires(ms: Option<u64>) -> String {
    ms.map_or_else(|| "never".to_owned(), time)
}

fn write_table(out: &mut impl Write, list: &[CheckpointInfo]) -> std::io::Result<()> {
    let width = list.iter().map(|c| c.name.len()).max().unwrap_or(0).max(4);
    writeln!(
        out,
        "{:<width$}  {:<5}  {:>8}  {:>12}  {:<20}  EXPIRES",
        "NAME", "KIND", "MANIFEST", "SEQ", "CREATED"
    )?;
    for c in list {
        let kind = match c.kind {
            CheckpointKind::Named => "named",
            CheckpointKind::Lease => "lease",
        };
        writeln!(
            out,
            "{:<width$}  {kind:<5}  {:>8}  {:>12}  {:<20}  {}",
            c.name,
            c.manifest_id,
            c.seq,
            time(c.created_at_ms),
            expires(c.expires_at_ms)
        )?;
    }
    Ok(())
}
