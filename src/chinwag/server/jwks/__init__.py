"""Apps' JWKS key sets: a bounded fetcher and the per-process cache sign-in reads."""

from chinwag.server.jwks.cache import FETCH, CachedSet, Fetch, JwksCache
from chinwag.server.jwks.fetcher import FetchedSet, JwksFetcher, JwksFetchError

__all__ = [
    "FETCH",
    "CachedSet",
    "Fetch",
    "FetchedSet",
    "JwksCache",
    "JwksFetchError",
    "JwksFetcher",
]
