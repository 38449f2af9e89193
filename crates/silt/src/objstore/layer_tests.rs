//! The [`Layer`] hooks reaching every request class through [`Layered`]: `before` can fail
//! any request before it reaches the store, `after` / `stream` can turn any success into an
//! error after the store applied it, and requests are described as documented.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use super::{Layer, Layered, Reply, Request, RequestKind, ResultStream};

fn mem() -> Arc<dyn ObjectStore> {
    Arc::new(InMemory::new())
}

fn payload(n: usize) -> PutPayload {
    PutPayload::from(vec![7u8; n])
}

fn create() -> PutOptions {
    PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    }
}

/// A layer failing requests of kind `refuse` in `before` (they must not reach the store) and
/// turning successes of kind `lose` into errors in `after` / `stream` (the store applied
/// them; the response is lost), recording what each hook saw.
#[derive(Debug, Default)]
struct Faults {
    refuse: Option<RequestKind>,
    lose: Option<RequestKind>,
    issued: Mutex<Vec<Request>>,
    log: Mutex<Vec<(&'static str, RequestKind)>>,
}

fn injected() -> object_store::Error {
    object_store::Error::Generic {
        store: "Faults",
        source: "injected".into(),
    }
}

impl Faults {
    fn saw(&self, hook: &'static str, kind: RequestKind) {
        self.log.lock().unwrap().push((hook, kind));
    }
}

impl Layer for Faults {
    const NAME: &'static str = "Faults";
    type Ticket = ();

    fn fmt_store(&self, inner: &dyn ObjectStore, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faults({inner})")
    }

    fn before(
        &self,
        req: &Request,
    ) -> (
        (),
        impl Future<Output = object_store::Result<()>> + Send + 'static,
    ) {
        self.saw("before", req.kind);
        self.issued.lock().unwrap().push(req.clone());
        let refused = self.refuse == Some(req.kind);
        ((), async move {
            if refused {
                Err(injected())
            } else {
                Ok(())
            }
        })
    }

    fn after<T: Reply>(
        &self,
        req: &Request,
        (): (),
        result: object_store::Result<T>,
    ) -> object_store::Result<T> {
        self.saw("after", req.kind);
        match result {
            Ok(_) if self.lose == Some(req.kind) => Err(injected()),
            r => r,
        }
    }

    fn stream<T: Reply>(&self, req: &Request, (): (), s: ResultStream<T>) -> ResultStream<T> {
        self.saw("stream", req.kind);
        if self.lose == Some(req.kind) {
            s.map(|item| item.and_then(|_| Err(injected()))).boxed()
        } else {
            s
        }
    }
}

/// Issues every flavour of a `kind` request (setting up with other kinds) through `store`.
async fn issue_every_flavour(
    store: &Layered<Faults>,
    kind: RequestKind,
) -> Vec<object_store::Result<()>> {
    let (a, new) = (Path::from("a"), Path::from("new"));
    let upload = || async { store.put_multipart(&new).await };
    match kind {
        RequestKind::Get => vec![async { store.get(&a).await?.bytes().await.map(drop) }.await],
        RequestKind::GetRange => vec![
            store.get_range(&a, 0..2).await.map(drop),
            store.get_ranges(&a, &[0..1, 2..3]).await.map(drop),
        ],
        RequestKind::Head => vec![store.head(&a).await.map(drop)],
        RequestKind::Put => vec![store.put(&new, payload(5)).await.map(drop)],
        RequestKind::PutConditional => {
            vec![store.put_opts(&new, payload(5), create()).await.map(drop)]
        }
        RequestKind::List => vec![
            store.list(None).try_collect::<Vec<_>>().await.map(drop),
            store
                .list_with_offset(None, &Path::from("0"))
                .try_collect::<Vec<_>>()
                .await
                .map(drop),
            store.list_with_delimiter(None).await.map(drop),
        ],
        RequestKind::Delete => vec![store.delete(&a).await],
        RequestKind::Copy => vec![store.copy(&a, &new).await],
        RequestKind::Rename => vec![store.rename(&a, &new).await],
        RequestKind::MultipartInit => vec![upload().await.map(drop)],
        RequestKind::MultipartPart => {
            let mut up = upload().await.unwrap();
            vec![up.put_part(payload(3)).await]
        }
        RequestKind::MultipartComplete => {
            let mut up = upload().await.unwrap();
            up.put_part(payload(3)).await.unwrap();
            vec![up.complete().await.map(drop)]
        }
        RequestKind::MultipartAbort => {
            let mut up = upload().await.unwrap();
            vec![up.abort().await]
        }
    }
}

#[tokio::test]
async fn layer_hooks_reach_every_request_class() {
    let names = |store: Arc<dyn ObjectStore>| async move {
        let listed: Vec<_> = store.list(None).try_collect().await.unwrap();
        listed.into_iter().map(|m| m.location).collect::<Vec<_>>()
    };
    // The requests whose effect the store shows.
    let mutating = [
        RequestKind::Put,
        RequestKind::PutConditional,
        RequestKind::Delete,
        RequestKind::Copy,
        RequestKind::Rename,
        RequestKind::MultipartComplete,
    ];
    for kind in RequestKind::ALL {
        for fault in ["none", "refuse", "lose"] {
            let inner = mem();
            inner.put(&Path::from("a"), payload(11)).await.unwrap();
            let layer = Faults {
                refuse: (fault == "refuse").then_some(kind),
                lose: (fault == "lose").then_some(kind),
                ..Faults::default()
            };
            let store = Layered::with_layer(Arc::clone(&inner), layer);
            let before = names(Arc::clone(&inner)).await;

            let results = issue_every_flavour(&store, kind).await;
            for r in &results {
                match fault {
                    "none" => assert!(r.is_ok(), "{kind} {fault}: {r:?}"),
                    _ => assert!(
                        matches!(
                            r,
                            Err(object_store::Error::Generic {
                                store: "Faults",
                                ..
                            })
                        ),
                        "{kind} {fault}: {r:?}"
                    ),
                }
            }
            let changed = names(Arc::clone(&inner)).await != before;
            assert_eq!(
                changed,
                fault != "refuse" && mutating.contains(&kind),
                "{kind} {fault}: did the request reach the store?"
            );
            let log = store.layer().log.lock().unwrap();
            assert!(log.contains(&("before", kind)), "{kind} {fault}: {log:?}");
            assert!(
                log.contains(&("after", kind)) || log.contains(&("stream", kind)),
                "{kind} {fault}: {log:?}"
            );
        }
    }

    // The request descriptions: path, payload size, and how many requests a call stands for.
    let store = Layered::with_layer(mem(), Faults::default());
    let p = Path::from("db/x");
    store.put(&p, payload(7)).await.unwrap();
    store.get_ranges(&p, &[0..1, 2..3, 4..5]).await.unwrap();
    let issued = store.layer().issued.lock().unwrap().clone();
    let want = |kind, size, count| Request {
        kind,
        path: Some(p.clone()),
        size,
        count,
    };
    assert_eq!(
        issued,
        [
            want(RequestKind::Put, 7, 1),
            want(RequestKind::GetRange, 0, 3)
        ]
    );
    assert_eq!(store.to_string(), "Faults(InMemory)");
}
