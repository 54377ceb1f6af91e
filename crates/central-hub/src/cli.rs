//! The command line: `central-hub [serve]` runs the server, `central-hub users ...` manages accounts.

use clap::{Args, Parser, Subcommand, ValueEnum};
use shared_contracts::{ClienteId, Email, Role};

use crate::config::{DEFAULT_DATABASE_URL, ServeArgs};

#[derive(Debug, Parser)]
#[command(name = "central-hub", version, about = "The authenticated gateway in front of the session-manager")]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default).
    Serve(Box<ServeArgs>),
    /// Manage user accounts in the database.
    Users(UsersArgs),
}

#[derive(Debug, Args)]
pub struct UsersArgs {
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true, global = true)]
    pub database_url: String,
    #[command(subcommand)]
    pub command: UsersCommand,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user. Without --password (or NEW_USER_PASSWORD) a strong one is generated and printed once.
    Add {
        #[arg(long)]
        email: Email,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Required for clients: the only clienteId the user may act for (a positive integer).
        #[arg(long)]
        cliente_id: Option<ClienteId>,
        #[arg(long, env = "NEW_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// List users (never their password hashes).
    List,
    /// Set a new password. Without --password (or NEW_USER_PASSWORD) one is generated and printed once.
    Passwd {
        #[arg(long)]
        email: Email,
        #[arg(long, env = "NEW_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Disable an account (its tokens stop working at once); --enable re-enables it.
    Disable {
        #[arg(long)]
        email: Email,
        #[arg(long)]
        enable: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Admin,
    Client,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Admin => Role::Admin,
            RoleArg::Client => Role::Client,
        }
    }
}
