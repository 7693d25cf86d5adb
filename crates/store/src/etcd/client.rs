//! A thin gRPC client of one etcd endpoint: the six calls pgbaton makes (range, txn,
//! lease grant/revoke/keep-alive, watch) on a tonic channel, plus user/password
//! authentication with the token sent on every call and renewed when etcd says it is
//! no longer valid (simple tokens expire after `--auth-token-ttl`, 5 min by default).

use super::errors::Error;
use super::proto::*;
use futures::channel::mpsc;
use std::sync::{Arc, RwLock};
use tonic::client::Grpc;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use tonic::{Code, Request, Status, Streaming};
use tonic_prost::ProstCodec;

/// The request metadata key etcd reads the auth token from.
const TOKEN_KEY: &str = "token";

/// User name and password, and the token they were last exchanged for. Shared by the
/// clients of every endpoint: a token is valid on all members of the etcd cluster.
pub(crate) struct Auth {
    user: String,
    password: String,
    token: RwLock<Option<MetadataValue<Ascii>>>,
    /// Serializes logins, so that concurrent calls meeting an expired token log in once.
    login: tokio::sync::Mutex<()>,
}

impl Auth {
    pub(crate) fn new(user: String, password: String) -> Auth {
        Auth {
            user,
            password,
            token: RwLock::new(None),
            login: tokio::sync::Mutex::new(()),
        }
    }

    fn current(&self) -> Option<MetadataValue<Ascii>> {
        self.token.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The sending half of a watch stream: requests to etcd.
pub(crate) type WatchSender = mpsc::Sender<WatchRequest>;

/// The client of one endpoint. Cheap to clone (the channel is shared).
#[derive(Clone)]
pub(crate) struct Client {
    channel: Channel,
    auth: Option<Arc<Auth>>,
}

impl Client {
    pub(crate) fn new(channel: Channel, auth: Option<Arc<Auth>>) -> Client {
        Client { channel, auth }
    }

    /// Read a key or a range.
    pub(crate) async fn range(&self, req: RangeRequest) -> Result<RangeResponse, Error> {
        self.unary("/etcdserverpb.KV/Range", req).await
    }

    /// Run a transaction.
    pub(crate) async fn txn(&self, req: TxnRequest) -> Result<TxnResponse, Error> {
        self.unary("/etcdserverpb.KV/Txn", req).await
    }

    /// Grant a lease of `ttl` seconds.
    pub(crate) async fn lease_grant(&self, ttl: i64) -> Result<LeaseGrantResponse, Error> {
        self.unary("/etcdserverpb.Lease/LeaseGrant", LeaseGrantRequest { ttl })
            .await
    }

    /// Revoke a lease (and delete its keys).
    pub(crate) async fn lease_revoke(&self, id: i64) -> Result<(), Error> {
        self.unary::<_, LeaseRevokeResponse>(
            "/etcdserverpb.Lease/LeaseRevoke",
            LeaseRevokeRequest { id },
        )
        .await
        .map(drop)
    }

    /// Renew a lease once: one request on a fresh keep-alive stream, one answer.
    /// Fails with [`Error::LeaseNotFound`] when etcd answers TTL 0 (no such lease).
    pub(crate) async fn lease_keep_alive(&self, id: i64) -> Result<(), Error> {
        let resp = self
            .with_token(|token| async move {
                let requests = futures::stream::iter([LeaseKeepAliveRequest { id }]);
                let mut stream = self
                    .streaming("/etcdserverpb.Lease/LeaseKeepAlive", requests, token)
                    .await?;
                let first: Option<LeaseKeepAliveResponse> = stream.message().await?;
                first.ok_or_else(|| Error::Stream("lease keep-alive stream closed".into()))
            })
            .await?;
        if resp.ttl <= 0 {
            return Err(Error::LeaseNotFound);
        }
        Ok(())
    }

    /// Open a watch stream and send `create` on it. Returns the sender for further
    /// requests (progress requests) and the stream of answers; dropping both ends it.
    pub(crate) async fn watch(
        &self,
        create: WatchCreateRequest,
    ) -> Result<(WatchSender, Streaming<WatchResponse>), Error> {
        self.with_token(|token| {
            let create = create.clone();
            async move {
                let (mut tx, rx) = mpsc::channel(4);
                tx.try_send(WatchRequest {
                    request_union: Some(WatchRequestUnion::Create(create)),
                })
                .map_err(|e| Error::Stream(format!("cannot queue the watch request: {e}")))?;
                let stream = self
                    .streaming("/etcdserverpb.Watch/Watch", rx, token)
                    .await?;
                Ok((tx, stream))
            }
        })
        .await
    }

    async fn unary<Req, Resp>(&self, path: &'static str, req: Req) -> Result<Resp, Error>
    where
        Req: prost::Message + Clone + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        self.with_token(|token| {
            let req = req.clone();
            async move {
                let mut grpc = self.grpc().await?;
                let resp = grpc
                    .unary(
                        with_token(Request::new(req), token),
                        PathAndQuery::from_static(path),
                        ProstCodec::<Req, Resp>::default(),
                    )
                    .await?;
                Ok(resp.into_inner())
            }
        })
        .await
    }

    async fn streaming<Req, Resp, S>(
        &self,
        path: &'static str,
        requests: S,
        token: Option<MetadataValue<Ascii>>,
    ) -> Result<Streaming<Resp>, Error>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
        S: futures::Stream<Item = Req> + Send + 'static,
    {
        let mut grpc = self.grpc().await?;
        let resp = grpc
            .streaming(
                with_token(Request::new(requests), token),
                PathAndQuery::from_static(path),
                ProstCodec::<Req, Resp>::default(),
            )
            .await?;
        Ok(resp.into_inner())
    }

    async fn grpc(&self) -> Result<Grpc<Channel>, Error> {
        let mut grpc = Grpc::new(self.channel.clone());
        grpc.ready().await.map_err(Error::Transport)?;
        Ok(grpc)
    }

    /// Run `call` with the current token (logging in first if there is none yet); when
    /// etcd says the token is invalid (expired), log in again and run it once more.
    /// Without credentials `call` runs once without a token.
    async fn with_token<T, F, Fut>(&self, call: F) -> Result<T, Error>
    where
        F: Fn(Option<MetadataValue<Ascii>>) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let Some(auth) = &self.auth else {
            return call(None).await;
        };
        let token = match auth.current() {
            Some(t) => t,
            None => self.login(auth, None).await?,
        };
        match call(Some(token.clone())).await {
            Err(Error::Status(s)) if is_invalid_token(&s) => {
                let fresh = self.login(auth, Some(token)).await?;
                call(Some(fresh)).await
            }
            other => other,
        }
    }

    /// Exchange user and password for a new token, unless another call already replaced
    /// `stale` (or set the first token) while this one waited.
    async fn login(
        &self,
        auth: &Auth,
        stale: Option<MetadataValue<Ascii>>,
    ) -> Result<MetadataValue<Ascii>, Error> {
        let _one = auth.login.lock().await;
        if let Some(t) = auth.current() {
            if Some(&t) != stale.as_ref() {
                return Ok(t);
            }
        }
        let mut grpc = self.grpc().await?;
        let req = AuthenticateRequest {
            name: auth.user.clone(),
            password: auth.password.clone(),
        };
        let resp = grpc
            .unary(
                Request::new(req),
                PathAndQuery::from_static("/etcdserverpb.Auth/Authenticate"),
                ProstCodec::<AuthenticateRequest, AuthenticateResponse>::default(),
            )
            .await
            .map_err(|s| Error::Login {
                user: auth.user.clone(),
                status: s,
            })?;
        let token: MetadataValue<Ascii> = resp.into_inner().token.parse().map_err(|_| {
            Error::Stream("etcd answered the login with a token that is not ASCII".into())
        })?;
        *auth.token.write().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
        Ok(token)
    }
}

fn with_token<T>(mut req: Request<T>, token: Option<MetadataValue<Ascii>>) -> Request<T> {
    if let Some(t) = token {
        req.metadata_mut().insert(TOKEN_KEY, t);
    }
    req
}

/// etcd's answer to a call with an expired or unknown token
/// ("etcdserver: invalid auth token", code Unauthenticated).
fn is_invalid_token(s: &Status) -> bool {
    s.code() == Code::Unauthenticated
        || (s.code() == Code::Unknown && s.message() == "etcdserver: invalid auth token")
}
