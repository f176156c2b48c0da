//! A tower layer that authenticates every gRPC call before any handler runs.
//!
//! A layer rather than checks inside the `FlightSqlService` methods: the
//! trait has some forty entry points and a default implementation for each,
//! and a check that must be remembered in every one will be forgotten in
//! one. Password verification is asynchronous (argon2 runs on the blocking
//! pool), which a plain tonic interceptor cannot do.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use super::Authenticator;
use crate::status::auth_status;

/// Wraps a service so that each request carries an authenticated
/// [`super::Analyst`] in its extensions or is refused with `Unauthenticated`.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    auth: Arc<Authenticator>,
}

impl AuthLayer {
    pub fn new(auth: Arc<Authenticator>) -> Self {
        Self { auth }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authenticated<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticated {
            inner,
            auth: Arc::clone(&self.auth),
        }
    }
}

/// The service produced by [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct Authenticated<S> {
    inner: S,
    auth: Arc<Authenticator>,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B> Service<http::Request<B>> for Authenticated<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The clone that was polled ready serves this call (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = Arc::clone(&self.auth);
        Box::pin(async move {
            match auth.authenticate(request.headers()).await {
                Ok(analyst) => {
                    request.extensions_mut().insert(analyst);
                    inner.call(request).await
                }
                Err(refusal) => {
                    let method = request.uri().path().rsplit('/').next().unwrap_or("");
                    Ok(auth_status(&refusal, method).into_http())
                }
            }
        })
    }
}
