//! Authentication: token issue/verify, password hashing, the request extractor and its user cache,
//! login rate limits.

pub mod cache;
pub mod extractor;
pub mod jwt;
pub mod password;
pub mod rate_limit;

pub use cache::UserCache;
pub use extractor::{AdminUser, AuthUser};
pub use jwt::{Claims, JwtKeys};
