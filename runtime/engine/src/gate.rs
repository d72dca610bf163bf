//! The one place where the engine decides whether a caller may do
//! something: every service names its [`Operation`], and [`Operation::needs`]
//! is the permission table.

use crate::{Engine, EngineError};
use weft_model::{Permission, Principal};

/// Everything a caller can ask of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// List or read installed plugins and their step types.
    ReadPlugins,
    /// Install a plugin.
    InstallPlugin,
    /// Enable or disable a plugin and set its capability grants.
    SetPluginState,
    /// Uninstall a plugin.
    UninstallPlugin,
    /// List or read templates and their revisions; validate a body.
    ReadTemplates,
    /// Create, update or delete a template.
    ManageTemplates,
    /// Start a run.
    StartRun,
    /// Read runs, steps, attempts, events, logs and artifacts.
    ReadRuns,
    /// Pause, resume or cancel a run.
    ControlRun,
    /// Answer a step's input request.
    AnswerRun,
    /// Read counts for metrics.
    ReadMetrics,
    /// List or read connections, test them and discover their streams.
    ReadConnections,
    /// Create, update, delete or test-configure connections.
    ManageConnections,
    /// List or read sync jobs, their state and catalog changes.
    ReadJobs,
    /// Create, update, delete or (de)activate jobs; edit their state.
    ManageJobs,
}

impl Operation {
    /// The permission the operation needs.
    pub const fn needs(self) -> Permission {
        match self {
            Self::ReadPlugins
            | Self::ReadTemplates
            | Self::ReadRuns
            | Self::ReadMetrics
            | Self::ReadConnections
            | Self::ReadJobs => Permission::Read,
            Self::ManageTemplates
            | Self::StartRun
            | Self::ControlRun
            | Self::AnswerRun
            | Self::ManageConnections
            | Self::ManageJobs => Permission::Operate,
            // Grants apply to every workspace, so setting them is the
            // instance's business, as installing is.
            Self::InstallPlugin | Self::SetPluginState | Self::UninstallPlugin => {
                Permission::AdministerInstance
            }
        }
    }
}

impl Engine {
    /// Refuses `operation` unless `caller` may do it.
    pub(crate) fn authorize(
        &self,
        caller: &Principal,
        operation: Operation,
    ) -> Result<(), EngineError> {
        let needed = operation.needs();
        if caller.may(needed) {
            Ok(())
        } else {
            Err(EngineError::Forbidden { operation, needed })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Operation;
    use weft_model::{Permission, Role};

    #[test]
    fn viewers_read_operators_run_instance_admins_install() {
        let viewer = Role::Viewer;
        assert!(viewer.grants(Operation::ReadRuns.needs()));
        assert!(!viewer.grants(Operation::StartRun.needs()));
        assert!(Role::Operator.grants(Operation::ManageTemplates.needs()));
        assert!(!Role::Admin.grants(Operation::InstallPlugin.needs()));
        assert_eq!(
            Operation::SetPluginState.needs(),
            Permission::AdministerInstance
        );
    }
}
