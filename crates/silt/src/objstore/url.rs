//! Object stores from URLs: `file://DIR` (or a bare path), `memory://`, `s3://bucket/prefix`,
//! `gs://bucket/prefix`, `az://container/prefix`. Local directories are written with fsync.

use std::sync::Arc;

use object_store::path::Path;
use object_store::ObjectStore;

use crate::error::{Error, Result};

/// Build the object store a URL names, and the database root inside it.
///
/// Cloud stores read the standard environment variables (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`,
/// `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_NAME`, ...).
///
/// # Errors
/// [`Error::InvalidSettings`] for an unknown scheme or a malformed URL; a local directory
/// that cannot be created is reported the same way.
pub fn store_from_url(url: &str) -> Result<(Arc<dyn ObjectStore>, Path)> {
    let bad = |msg: String| Error::InvalidSettings(format!("store URL {url:?}: {msg}"));
    let Some((scheme, rest)) = url.split_once("://") else {
        return local(url).map_err(bad);
    };
    match scheme {
        "file" => local(rest).map_err(bad),
        "memory" => Ok((
            Arc::new(object_store::memory::InMemory::new()),
            Path::from(rest.trim_matches('/')),
        )),
        "s3" | "s3a" => {
            let (bucket, prefix) = bucket_and_prefix(rest).map_err(bad)?;
            let store = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch)
                .build()
                .map_err(|e| bad(e.to_string()))?;
            Ok((Arc::new(store), prefix))
        }
        "gs" => {
            let (bucket, prefix) = bucket_and_prefix(rest).map_err(bad)?;
            let store = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| bad(e.to_string()))?;
            Ok((Arc::new(store), prefix))
        }
        "az" | "azure" => {
            let (container, prefix) = bucket_and_prefix(rest).map_err(bad)?;
            let store = object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_container_name(container)
                .build()
                .map_err(|e| bad(e.to_string()))?;
            Ok((Arc::new(store), prefix))
        }
        other => Err(bad(format!(
            "unknown scheme {other:?} (use file://, memory://, s3://, gs:// or az://)"
        ))),
    }
}

fn bucket_and_prefix(rest: &str) -> std::result::Result<(&str, Path), String> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err("missing bucket name".into());
    }
    Ok((bucket, Path::from(prefix.trim_matches('/'))))
}

fn local(dir: &str) -> std::result::Result<(Arc<dyn ObjectStore>, Path), String> {
    if dir.is_empty() {
        return Err("empty directory".into());
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create directory {dir}: {e}"))?;
    // fsync written files and their parent directories before a PUT returns: an
    // acknowledged object (a WAL segment, a manifest) must survive a power loss, not come
    // back empty after one.
    let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
        .map_err(|e| e.to_string())?
        .with_fsync(true);
    Ok((Arc::new(store), Path::from("")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        let dir = tempfile::tempdir().unwrap();
        let u = format!("file://{}", dir.path().join("db").display());
        store_from_url(&u).unwrap();
        let (_, root) = store_from_url("memory://a/b/").unwrap();
        assert_eq!(root.as_ref(), "a/b");
        let e = store_from_url("ftp://x").unwrap_err().to_string();
        assert!(e.contains("unknown scheme"), "{e}");
        assert!(store_from_url("s3://").is_err());
    }
}
