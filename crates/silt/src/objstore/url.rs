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
            let builder = object_store::aws::AmazonS3Builder::from_env();
            check_s3(&builder, |k| {
                std::env::var_os(k).is_some_and(|v| !v.is_empty())
            })
            .map_err(bad)?;
            let store = builder
                .with_bucket_name(bucket)
                .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch)
                .build()
                .map_err(|e| bad(e.to_string()))?;
            Ok((Arc::new(store), prefix))
        }
        "gs" => {
            let (bucket, prefix) = bucket_and_prefix(rest).map_err(bad)?;
            let builder = object_store::gcp::GoogleCloudStorageBuilder::from_env();
            check_gcs(&builder, adc_file_exists).map_err(bad)?;
            let store = builder
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| bad(e.to_string()))?;
            Ok((Arc::new(store), prefix))
        }
        "az" | "azure" => {
            let (container, prefix) = bucket_and_prefix(rest).map_err(bad)?;
            let builder = object_store::azure::MicrosoftAzureBuilder::from_env();
            check_azure(&builder).map_err(bad)?;
            let store = builder
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

/// Missing S3 credentials, told in one line instead of a failed instance-metadata request.
///
/// The rule: an access key needs its secret key and the other way round. Without either,
/// an `s3://` URL with a custom endpoint (`AWS_ENDPOINT`/`AWS_ENDPOINT_URL`: an emulator or
/// an S3-compatible service, where no instance metadata service hands out credentials) is
/// refused unless a web-identity token (`AWS_WEB_IDENTITY_TOKEN_FILE`), container credentials
/// (`AWS_CONTAINER_CREDENTIALS_*`) or `AWS_SKIP_SIGNATURE=true` stand in. Without an endpoint
/// the lookup is left to `object_store`: on EC2 an IAM role comes from the metadata service.
fn check_s3(
    b: &object_store::aws::AmazonS3Builder,
    env_set: impl Fn(&str) -> bool,
) -> std::result::Result<(), String> {
    use object_store::aws::AmazonS3ConfigKey as K;
    let get = |k: K| b.get_config_value(&k).filter(|v| !v.is_empty());
    let key = get(K::AccessKeyId).is_some();
    let secret = get(K::SecretAccessKey).is_some();
    match (key, secret) {
        (true, false) => {
            return Err("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".into())
        }
        (false, true) => {
            return Err("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not".into())
        }
        (true, true) => return Ok(()),
        (false, false) => {}
    }
    let Some(endpoint) = get(K::Endpoint) else {
        return Ok(());
    };
    let skip = get(K::SkipSignature).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let other = skip
        || get(K::ContainerCredentialsRelativeUri).is_some()
        || get(K::ContainerCredentialsFullUri).is_some()
        || env_set("AWS_WEB_IDENTITY_TOKEN_FILE");
    if other {
        return Ok(());
    }
    Err(format!(
        "no credentials for the endpoint {endpoint}: set AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY (or AWS_SKIP_SIGNATURE=true for anonymous access)"
    ))
}

/// A missing Azure storage account, told in one line. Without a key, SAS token or service
/// principal `object_store` falls back to a managed identity, so only the account is required.
fn check_azure(b: &object_store::azure::MicrosoftAzureBuilder) -> std::result::Result<(), String> {
    use object_store::azure::AzureConfigKey as K;
    let get = |k: K| b.get_config_value(&k).filter(|v| !v.is_empty());
    let emulator = get(K::UseEmulator).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if emulator || get(K::AccountName).is_some() || get(K::Endpoint).is_some() {
        return Ok(());
    }
    Err(
        "no storage account: set AZURE_STORAGE_ACCOUNT_NAME (with AZURE_STORAGE_ACCOUNT_KEY, \
         AZURE_STORAGE_SAS_KEY or a service principal; a managed identity otherwise), or \
         AZURE_STORAGE_USE_EMULATOR=true for Azurite"
            .into(),
    )
}

/// Missing Google credentials for a custom endpoint, told in one line, as for S3.
///
/// The rule: with `GOOGLE_BASE_URL` set (an emulator or a GCS-compatible service, where no
/// GCE metadata server hands out tokens) one of a service account (`GOOGLE_SERVICE_ACCOUNT`
/// or `GOOGLE_SERVICE_ACCOUNT_KEY`; for an emulator, one with `"disable_oauth": true`),
/// `GOOGLE_APPLICATION_CREDENTIALS`, the gcloud application-default credentials file
/// (`adc_file`, asked only then) or `GOOGLE_BEARER_TOKEN` must be there. Without a base URL the lookup is
/// left to `object_store`: on GCE, GKE or Cloud Run the token comes from the metadata server.
/// A base URL given inside the service-account file comes with its credentials.
fn check_gcs(
    b: &object_store::gcp::GoogleCloudStorageBuilder,
    adc_file: impl Fn() -> bool,
) -> std::result::Result<(), String> {
    use object_store::gcp::GoogleConfigKey as K;
    let get = |k: K| b.get_config_value(&k).filter(|v| !v.is_empty());
    let Some(endpoint) = get(K::BaseUrl) else {
        return Ok(());
    };
    let credentials = get(K::ServiceAccount).is_some()
        || get(K::ServiceAccountKey).is_some()
        || get(K::ApplicationCredentials).is_some()
        || get(K::BearerToken).is_some()
        || adc_file();
    if credentials {
        return Ok(());
    }
    Err(format!(
        "no credentials for the endpoint {endpoint}: set GOOGLE_SERVICE_ACCOUNT to a \
         service-account JSON file (for an emulator, one with \"disable_oauth\": true) or \
         GOOGLE_APPLICATION_CREDENTIALS"
    ))
}

/// Whether gcloud's application-default credentials file is where `object_store` looks.
fn adc_file_exists() -> bool {
    std::env::var_os("HOME").is_some_and(|home| {
        std::path::Path::new(&home)
            .join(".config/gcloud/application_default_credentials.json")
            .exists()
    })
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

    #[test]
    fn missing_credentials_are_named() {
        use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey as K};
        use object_store::azure::MicrosoftAzureBuilder;
        use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey as G};
        let none = |_: &str| false;
        // No endpoint, no keys: left to the instance metadata service (IAM roles).
        assert!(check_s3(&AmazonS3Builder::new(), none).is_ok());
        let emulator = AmazonS3Builder::new().with_endpoint("http://127.0.0.1:18333");
        let e = check_s3(&emulator, none).unwrap_err();
        assert!(
            e.contains("AWS_ACCESS_KEY_ID") && e.contains("127.0.0.1:18333"),
            "{e}"
        );
        assert!(check_s3(&emulator, |k| k == "AWS_WEB_IDENTITY_TOKEN_FILE").is_ok());
        let anonymous = emulator.clone().with_config(K::SkipSignature, "true");
        assert!(check_s3(&anonymous, none).is_ok());
        let half = emulator.clone().with_access_key_id("k");
        let e = check_s3(&half, none).unwrap_err();
        assert!(e.contains("AWS_SECRET_ACCESS_KEY is not"), "{e}");
        assert!(check_s3(&half.with_secret_access_key("s"), none).is_ok());

        let e = check_azure(&MicrosoftAzureBuilder::new()).unwrap_err();
        assert!(e.contains("AZURE_STORAGE_ACCOUNT_NAME"), "{e}");
        assert!(check_azure(&MicrosoftAzureBuilder::new().with_use_emulator(true)).is_ok());
        assert!(check_azure(&MicrosoftAzureBuilder::new().with_account("a")).is_ok());

        // No base URL: left to the GCE metadata server.
        assert!(check_gcs(&GoogleCloudStorageBuilder::new(), || false).is_ok());
        let emulator =
            GoogleCloudStorageBuilder::new().with_config(G::BaseUrl, "http://127.0.0.1:18200");
        let e = check_gcs(&emulator, || false).unwrap_err();
        assert!(
            e.contains("GOOGLE_SERVICE_ACCOUNT") && e.contains("127.0.0.1:18200"),
            "{e}"
        );
        assert!(check_gcs(&emulator, || true).is_ok());
        let sa = emulator
            .clone()
            .with_config(G::ServiceAccount, "/keys/sa.json");
        assert!(check_gcs(&sa, || false).is_ok());
        assert!(check_gcs(&emulator.with_bearer_token("t"), || false).is_ok());
    }
}
