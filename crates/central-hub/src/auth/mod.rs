//! Authentication: token issue/verify, password hashing, the request extractor, login rate limits.

pub mod extractor;
pub mod jwt;
pub mod password;
pub mod rate_limit;

pub use extractor::{AdminUser, AuthUser};
pub use jwt::{Claims, JwtKeys};
