//! `pve-schema`: imports pve-docs' `apidata.js` into the OpenAPI document in `schema/`, and
//! shows what changed between two PVE versions.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use proxmox_exporter::pve::operations::parse_operations;
use proxmox_exporter::schema::{self, SchemaError};

#[derive(Parser)]
#[command(version, about = "Import and compare Proxmox VE API schemas")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert apidata.js (from /usr/share/pve-docs/api-viewer/ on a PVE host) to OpenAPI 3.0.
    Import {
        /// The apidata.js file (or the bare JSON array it holds).
        apidata: PathBuf,
        /// Where to write the OpenAPI document.
        #[arg(long)]
        out: PathBuf,
        /// The PVE version the file comes from (default: read from a name like apidata-9.1.3.js).
        #[arg(long)]
        pve_version: Option<String>,
    },
    /// Print what changed from OLD to NEW (each an apidata file or an OpenAPI document).
    Diff {
        old: PathBuf,
        new: PathBuf,
        /// Only report paths starting with one of these prefixes (repeatable).
        #[arg(long = "path")]
        paths: Vec<String>,
        /// Only report the paths listed in this file (`METHOD /path` lines, like
        /// schema/operations.txt): what a new PVE release means for our collectors.
        #[arg(long)]
        operations: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pve-schema: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Import {
            apidata,
            out,
            pve_version,
        } => {
            let version = match pve_version.or_else(|| version_from_name(&apidata)) {
                Some(v) => v,
                None => {
                    return Err(format!(
                        "cannot tell the PVE version of {}: pass --pve-version (see `pveversion`)",
                        apidata.display()
                    )
                    .into());
                }
            };
            let text = schema::read_text(&apidata)?;
            let nodes = schema::parse_apidata(&text, &apidata.display().to_string())?;
            let doc = schema::import(&nodes, &version)?;
            std::fs::write(&out, schema::to_bytes(&doc))
                .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            let count = doc["paths"].as_object().map_or(0, |p| p.len());
            eprintln!(
                "pve-schema: wrote {} (PVE {version}, {count} paths)",
                out.display()
            );
            Ok(())
        }
        Command::Diff {
            old,
            new,
            paths,
            operations,
        } => {
            let listed = match &operations {
                Some(file) => {
                    let text = schema::read_text(file)?;
                    let ops = parse_operations(&text, &file.display().to_string())?;
                    Some(ops.into_iter().map(|op| op.path).collect::<Vec<_>>())
                }
                None => None,
            };
            let old_doc = load(&old)?;
            let new_doc = load(&new)?;
            let changes: Vec<_> = schema::diff(&old_doc, &new_doc)
                .into_iter()
                .filter(|c| paths.is_empty() || paths.iter().any(|p| c.path().starts_with(p)))
                .filter(|c| {
                    listed
                        .as_ref()
                        .is_none_or(|l| l.iter().any(|p| p == c.path()))
                })
                .collect();
            for change in &changes {
                println!("{change}");
            }
            eprintln!("pve-schema: {} changes", changes.len());
            Ok(())
        }
    }
}

fn load(path: &Path) -> Result<serde_json::Value, SchemaError> {
    let text = schema::read_text(path)?;
    schema::load_openapi(&text, &path.display().to_string())
}

/// `apidata-9.1.3.js` → `9.1.3`.
fn version_from_name(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_str()?;
    let version = stem.strip_prefix("apidata-")?;
    version
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit())
        .then(|| version.to_owned())
}
