//! Templates: validation against the installed plugins, revisions, and
//! their lists.

use crate::{Engine, EngineError, Operation, Page, PageRequest, StoreError};
use serde_json::Value;
use weft_model::TemplateHead;
use weft_model::template::{
    TemplateProblem, ValidatedTemplate, WorkflowTemplate, validate_template_with,
};
use weft_model::{Principal, TemplateId};

impl Engine {
    /// Validates a template body against the installed plugins.
    pub fn validate_template(
        &self,
        caller: &Principal,
        body: &Value,
    ) -> Result<ValidatedTemplate, EngineError> {
        self.authorize(caller, Operation::ReadTemplates)?;
        let template = parse_template(body)?;
        validate_template_with(&template, &self.registry, &self.shared.config.templates)
            .map_err(EngineError::InvalidTemplate)
    }

    /// Creates a template (revision 1) after validating it.
    pub async fn create_template(
        &self,
        caller: &Principal,
        body: &Value,
    ) -> Result<TemplateHead, EngineError> {
        self.authorize(caller, Operation::ManageTemplates)?;
        let validated = self.validate_template(caller, body)?;
        let name = validated.template().name.clone();
        refuse_job_template(&name)?;
        let id = TemplateId::generate();
        Ok(self.shared.store.create_template(&id, &name, body).await?)
    }

    /// Writes a new revision if the template is still at `expected_revision`.
    pub async fn update_template(
        &self,
        caller: &Principal,
        id_or_name: &str,
        body: &Value,
        expected_revision: u32,
    ) -> Result<TemplateHead, EngineError> {
        self.authorize(caller, Operation::ManageTemplates)?;
        let validated = self.validate_template(caller, body)?;
        refuse_job_template(&validated.template().name)?;
        let current = self.shared.store.template(id_or_name).await?;
        refuse_job_template(&current.name)?;
        let mismatch = |current| EngineError::RevisionMismatch {
            expected: expected_revision,
            current,
        };
        if current.revision != expected_revision {
            return Err(mismatch(current.revision));
        }
        match self
            .shared
            .store
            .update_template(&current.template_id, body, expected_revision)
            .await
        {
            // Another writer got in between the read and the write.
            Err(StoreError::Conflict(_)) => {
                let now = self.shared.store.template(&current.template_id).await?;
                Err(mismatch(now.revision))
            }
            other => Ok(other?),
        }
    }

    /// Deletes a template (by id or name) and returns it as it was. Runs
    /// of it keep their pinned revision.
    pub async fn delete_template(
        &self,
        caller: &Principal,
        id_or_name: &str,
    ) -> Result<TemplateHead, EngineError> {
        self.authorize(caller, Operation::ManageTemplates)?;
        let t = self.shared.store.template(id_or_name).await?;
        refuse_job_template(&t.name)?;
        self.shared.store.delete_template(&t.template_id).await?;
        Ok(t)
    }

    /// A template by id or name.
    pub async fn template(
        &self,
        caller: &Principal,
        id_or_name: &str,
    ) -> Result<TemplateHead, EngineError> {
        self.authorize(caller, Operation::ReadTemplates)?;
        Ok(self.shared.store.template(id_or_name).await?)
    }

    /// A page of templates, by name.
    pub async fn list_templates(
        &self,
        caller: &Principal,
        page: PageRequest,
    ) -> Result<Page<weft_model::TemplateHead>, EngineError> {
        self.authorize(caller, Operation::ReadTemplates)?;
        let p = self
            .shared
            .store
            .list_templates(page.page, page.page_size)
            .await?;
        Ok(Page {
            items: p.templates,
            total: p.total,
        })
    }

    /// A page of a template's revisions (by id or name), oldest first.
    pub async fn list_template_revisions(
        &self,
        caller: &Principal,
        id_or_name: &str,
        page: PageRequest,
    ) -> Result<Page<weft_model::TemplateRevision>, EngineError> {
        self.authorize(caller, Operation::ReadTemplates)?;
        let t = self.shared.store.template(id_or_name).await?;
        let p = self
            .shared
            .store
            .list_template_revisions(&t.template_id, page.page, page.page_size)
            .await?;
        Ok(Page {
            items: p.revisions,
            total: p.total,
        })
    }
}

/// Templates of sync jobs change only through their job.
fn refuse_job_template(name: &str) -> Result<(), EngineError> {
    match name.strip_prefix(weft_model::SYNC_JOB_TEMPLATE_PREFIX) {
        Some(job) => Err(EngineError::Conflict(format!(
            "template {name:?} belongs to sync job {job:?} and changes only through /jobs/{job}"
        ))),
        None => Ok(()),
    }
}

pub(crate) fn parse_template(body: &Value) -> Result<WorkflowTemplate, EngineError> {
    WorkflowTemplate::from_value(body).map_err(|e| {
        EngineError::InvalidTemplate(vec![TemplateProblem {
            pointer: String::new(),
            code: weft_model::template::TemplateProblemCode::InvalidTemplate,
            message: e.to_string(),
        }])
    })
}
