//! Who calls the engine, and what a caller may do.
//!
//! Every engine service takes the calling [`Principal`]; the engine decides
//! in one place whether its [`Role`] grants the [`Permission`] an operation
//! needs. Today there is one kind of human caller, the bootstrap admin
//! token; users, API keys and workspaces add principals, not checks.

use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

/// What a caller may do, from least to most. A role grants every
/// permission at or below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads templates, runs, steps, logs and artifacts.
    Viewer,
    /// Also starts, answers, pauses and cancels runs and manages templates.
    Operator,
    /// Also enables and disables installed plugins for the workspace.
    Admin,
    /// Also installs and uninstalls plugins and sets capability grants,
    /// which apply to every workspace.
    InstanceAdmin,
}

/// What an operation needs; [`Role::grants`] decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Read anything of the workspace.
    Read,
    /// Change runs and templates.
    Operate,
    /// Administer the workspace.
    AdministerWorkspace,
    /// Administer the instance (plugins' bytes and grants).
    AdministerInstance,
}

impl Role {
    /// The least permission this role lacks nothing below.
    const fn ceiling(self) -> Permission {
        match self {
            Self::Viewer => Permission::Read,
            Self::Operator => Permission::Operate,
            Self::Admin => Permission::AdministerWorkspace,
            Self::InstanceAdmin => Permission::AdministerInstance,
        }
    }

    /// Whether this role grants `permission`.
    pub fn grants(self, permission: Permission) -> bool {
        permission <= self.ceiling()
    }
}

/// How a principal proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// The bootstrap admin token (break-glass).
    BootstrapToken,
    /// The engine itself (cron schedules, recovery).
    System,
}

/// Who calls an engine service.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    /// Display name, recorded in events (`cancelled by …`).
    pub name: String,
    /// How it authenticated.
    pub kind: PrincipalKind,
    /// What it may do.
    pub role: Role,
}

static BOOTSTRAP: LazyLock<Principal> = LazyLock::new(|| Principal {
    name: "admin".into(),
    kind: PrincipalKind::BootstrapToken,
    role: Role::InstanceAdmin,
});

static SYSTEM: LazyLock<Principal> = LazyLock::new(|| Principal {
    name: "system".into(),
    kind: PrincipalKind::System,
    role: Role::Operator,
});

impl Principal {
    /// The holder of the bootstrap admin token.
    pub fn bootstrap_admin() -> &'static Self {
        &BOOTSTRAP
    }

    /// The engine acting on its own (a cron schedule firing).
    pub fn system() -> &'static Self {
        &SYSTEM
    }

    /// Whether this principal has `permission`.
    pub fn may(&self, permission: Permission) -> bool {
        self.role.grants(permission)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grant_what_is_at_or_below_them() {
        use Permission::*;
        let all = [Read, Operate, AdministerWorkspace, AdministerInstance];
        let granted = |r: Role| all.iter().filter(|p| r.grants(**p)).count();
        assert_eq!(granted(Role::Viewer), 1);
        assert_eq!(granted(Role::Operator), 2);
        assert_eq!(granted(Role::Admin), 3);
        assert_eq!(granted(Role::InstanceAdmin), 4);
        assert!(!Role::Operator.grants(AdministerWorkspace));
        assert!(Principal::bootstrap_admin().may(AdministerInstance));
        assert!(!Principal::system().may(AdministerWorkspace));
    }
}
