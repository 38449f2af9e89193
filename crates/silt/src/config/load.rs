//! [`Settings::load`]: the defaults, then a settings file (TOML or JSON, chosen by its
//! extension), then `SILT_` environment variables, through `figment`, then
//! [`Settings::validate`].
//!
//! An environment variable names a field by its path with `__` between the parts, after
//! the prefix `SILT_`, in any case: `SILT_MEMTABLE_BYTES=33554432`,
//! `SILT_WAL__MAX_PUTS_PER_SEC=20`, `SILT_STORE__RETRY__DEADLINE=5s`. Only variables whose
//! first part names a settings field are read: a top-level value (`memtable_bytes`) without
//! a `__`, a section (`wal`, `store`, `local_log`, ...) only with one. So other `SILT_`
//! variables (the CLI's `SILT_STORE` URL, the tests' `SILT_TEST_S3_URL`) are not settings,
//! while a misspelt field inside a section (`SILT_WAL__MAX_PUT_PER_SEC`) is rejected with
//! its name, as an unknown key in a file is.

use std::path::Path;

use figment::providers::{Env, Format, Json, Toml};
use figment::Figment;

use super::Settings;
use crate::error::{Error, Result};

/// Prefix of the environment variables [`Settings::load`] reads.
pub const ENV_PREFIX: &str = "SILT_";
/// Separator between the parts of a field's path in an environment variable's name.
pub const ENV_SEPARATOR: &str = "__";

/// Top-level fields of [`Settings`]: `(name, is_section)`, from the defaults' serde form.
fn top_level_fields() -> Vec<(String, bool)> {
    match serde_json::to_value(Settings::default()) {
        Ok(serde_json::Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| {
                // `local_log` defaults to `None` (null) and is a section too.
                let section = v.is_object() || v.is_null();
                (k, section)
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The `SILT_` environment provider, reading only variables that name a settings field.
fn env_provider() -> Env {
    let fields = top_level_fields();
    Env::prefixed(ENV_PREFIX)
        .split(ENV_SEPARATOR)
        .filter(move |key| {
            // Names are matched in any case (figment lowercases them after this filter).
            let key = key.as_str().to_ascii_lowercase();
            match key.split_once('.') {
                Some((first, _)) => fields.iter().any(|(f, section)| *section && f == first),
                None => fields.iter().any(|(f, section)| !*section && *f == key),
            }
        })
}

fn describe(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

impl Settings {
    /// The settings of `file` (TOML for a `.toml` name, JSON for `.json`; defaults without a
    /// file), overridden by `SILT_` environment variables (see the module docs), validated.
    ///
    /// # Errors
    /// [`Error::InvalidSettings`] naming the file or the variable and the bad key: an
    /// unreadable file, an unknown extension, a syntax error, an unknown key, a value of
    /// the wrong type, or a value [`Settings::validate`] refuses.
    pub fn load(file: Option<&Path>) -> Result<Settings> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            let shown = path.display();
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::InvalidSettings(format!("cannot read settings file {shown}: {e}"))
            })?;
            figment = match path.extension().and_then(|e| e.to_str()) {
                Some(ext) if ext.eq_ignore_ascii_case("toml") => figment.merge(Toml::string(&text)),
                Some(ext) if ext.eq_ignore_ascii_case("json") => figment.merge(Json::string(&text)),
                _ => {
                    return Err(Error::InvalidSettings(format!(
                        "settings file {shown}: name it .toml or .json (its extension picks the format)"
                    )))
                }
            };
            // The file alone first, so its errors name the file.
            figment.extract::<Settings>().map_err(|e| {
                Error::InvalidSettings(format!("settings file {shown}: {}", describe(e)))
            })?;
        }
        let settings: Settings = figment.merge(env_provider()).extract().map_err(|e| {
            Error::InvalidSettings(format!(
                "{ENV_PREFIX}* environment variables: {}",
                describe(e)
            ))
        })?;
        settings.validate()?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    // `figment::Jail`'s closures return `figment::Error`, which is large; it is its API.
    #![allow(clippy::unwrap_used, clippy::result_large_err)]

    use std::time::Duration;

    use figment::Jail;

    use super::*;

    fn err(r: Result<Settings>) -> String {
        match r {
            Err(Error::InvalidSettings(m)) => m,
            other => panic!("expected InvalidSettings, got {other:?}"),
        }
    }

    #[test]
    fn toml_and_json_files_by_extension() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "s.toml",
                "memtable_bytes = 1048576\n[wal]\nflush_interval = \"50ms\"\nmax_puts_per_sec = 20.0\n",
            )?;
            let s = Settings::load(Some(Path::new("s.toml"))).unwrap();
            assert_eq!(s.memtable_bytes, 1 << 20);
            assert_eq!(s.wal.flush_interval, Duration::from_millis(50));
            assert_eq!(s.wal.max_puts_per_sec, 20.0);
            // Unset fields keep their defaults.
            assert_eq!(s.wal.segment_bytes, Settings::default().wal.segment_bytes);

            jail.create_file("s.json", r#"{"wal": {"max_puts_per_sec": 5}}"#)?;
            let s = Settings::load(Some(Path::new("s.json"))).unwrap();
            assert_eq!(s.wal.max_puts_per_sec, 5.0);

            jail.create_file("s.yaml", "wal: {}")?;
            let e = err(Settings::load(Some(Path::new("s.yaml"))));
            assert!(e.contains("s.yaml") && e.contains(".toml or .json"), "{e}");
            let e = err(Settings::load(Some(Path::new("missing.toml"))));
            assert!(e.contains("cannot read settings file missing.toml"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        Jail::expect_with(|jail| {
            jail.create_file("s.toml", "[wal]\nmax_put_per_sec = 3\n")?;
            let e = err(Settings::load(Some(Path::new("s.toml"))));
            assert!(e.contains("s.toml") && e.contains("max_put_per_sec"), "{e}");

            jail.create_file("s.json", r#"{"wal": {"max_puts_per_sec": "lots"}}"#)?;
            let e = err(Settings::load(Some(Path::new("s.json"))));
            assert!(
                e.contains("s.json") && e.contains("max_puts_per_sec"),
                "{e}"
            );

            jail.create_file("bad.toml", "[wal\n")?;
            let e = err(Settings::load(Some(Path::new("bad.toml"))));
            assert!(e.contains("bad.toml"), "{e}");

            // Parsed, then refused by `validate`.
            jail.create_file("zero.toml", "[wal]\nmax_puts_per_sec = 0.0\n")?;
            let e = err(Settings::load(Some(Path::new("zero.toml"))));
            assert!(e.contains("max_puts_per_sec"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn environment_overrides_the_file() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "s.toml",
                "memtable_bytes = 1048576\n[wal]\nmax_puts_per_sec = 5.0\n",
            )?;
            jail.set_env("SILT_WAL__MAX_PUTS_PER_SEC", "20");
            jail.set_env("SILT_STORE__RETRY__DEADLINE", "5s");
            jail.set_env("silt_flush_on_close", "false");
            // Not settings: the CLI's store URL and the tests' variables.
            jail.set_env("SILT_STORE", "file:///tmp/x");
            jail.set_env("SILT_TEST_S3_URL", "s3://b");
            jail.set_env("SILT_LONG", "1");
            let s = Settings::load(Some(Path::new("s.toml"))).unwrap();
            assert_eq!(s.memtable_bytes, 1 << 20);
            assert_eq!(s.wal.max_puts_per_sec, 20.0);
            assert_eq!(s.store.retry.deadline, Duration::from_secs(5));
            assert!(!s.flush_on_close);

            // Without a file, too; and a local log from the environment alone.
            jail.set_env("SILT_LOCAL_LOG__DIR", "/tmp/silt-local");
            let s = Settings::load(None).unwrap();
            assert_eq!(s.wal.max_puts_per_sec, 20.0);
            assert_eq!(
                s.local_log.as_ref().map(|l| l.dir.clone()),
                Some("/tmp/silt-local".into())
            );
            Ok(())
        });
    }

    #[test]
    fn bad_environment_variables_are_named() {
        Jail::expect_with(|jail| {
            jail.set_env("SILT_WAL__MAX_PUT_PER_SEC", "20");
            let e = err(Settings::load(None));
            assert!(
                e.contains("SILT_") && e.to_lowercase().contains("max_put_per_sec"),
                "{e}"
            );
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("SILT_GC__INTERVAL", "soon");
            let e = err(Settings::load(None));
            // figment names the key as the variable spelt it.
            assert!(e.contains("GC.INTERVAL") && e.contains("\"soon\""), "{e}");
            Ok(())
        });
    }
}
