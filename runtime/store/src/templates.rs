//! Workflow templates and their immutable revisions.

use crate::records::{RevisionPage, TemplatePage};
use crate::runs::{rows, to_json};
use crate::{DbErrorKind, Store, StoreError, now_ms};
use serde_json::{Value, json};
use weft_model::{TemplateHead, TemplateId, TemplateRevision};

impl Store {
    /// Creates a template at revision 1. Names are unique.
    pub async fn create_template(
        &self,
        template_id: &TemplateId,
        name: &str,
        body: &Value,
    ) -> Result<TemplateHead, StoreError> {
        let now = now_ms();
        let rec = TemplateHead {
            template_id: template_id.clone(),
            name: name.into(),
            revision: 1,
            body: body.clone(),
            created_at: now,
            updated_at: now,
        };
        let rev = TemplateRevision {
            template_id: template_id.clone(),
            revision: 1,
            body: body.clone(),
            created_at: now,
        };
        let res = self
            .run(
                "BEGIN TRANSACTION;\
                 CREATE type::record('template', $t.templateId) CONTENT $t RETURN NONE;\
                 CREATE type::record('template_revision', [$r.templateId, $r.revision]) CONTENT $r RETURN NONE;\
                 COMMIT TRANSACTION;",
                json!({"t": to_json(&rec)?, "r": to_json(&rev)?}),
            )
            .await;
        match res {
            Ok(_) => Ok(rec),
            Err(e) if e.db_kind() == Some(DbErrorKind::AlreadyExists) => Err(StoreError::Conflict(
                format!("a template named {name:?} already exists"),
            )),
            Err(e) => Err(e),
        }
    }

    /// Writes a new revision if the head is still `expected_revision`.
    pub async fn update_template(
        &self,
        template_id: &TemplateId,
        body: &Value,
        expected_revision: u32,
    ) -> Result<TemplateHead, StoreError> {
        let current = self.template(template_id.as_str()).await?;
        if current.revision != expected_revision {
            return Err(StoreError::Conflict(format!(
                "template is at revision {}, not {expected_revision}",
                current.revision
            )));
        }
        let now = now_ms();
        let next = TemplateHead {
            revision: expected_revision + 1,
            body: body.clone(),
            updated_at: now,
            ..current
        };
        let rev = TemplateRevision {
            template_id: template_id.clone(),
            revision: next.revision,
            body: body.clone(),
            created_at: now,
        };
        // Creating the revision record fails if a concurrent update took the number.
        match self
            .run(
                "BEGIN TRANSACTION;\
                 CREATE type::record('template_revision', [$r.templateId, $r.revision]) CONTENT $r RETURN NONE;\
                 UPSERT type::record('template', $t.templateId) CONTENT $t RETURN NONE;\
                 COMMIT TRANSACTION;",
                json!({"t": to_json(&next)?, "r": to_json(&rev)?}),
            )
            .await
        {
            Ok(_) => Ok(next),
            Err(e) if e.db_kind() == Some(DbErrorKind::AlreadyExists) => Err(StoreError::Conflict(
                "template was updated concurrently".into(),
            )),
            Err(e) => Err(e),
        }
    }

    /// A template by name or, failing that, by id.
    pub async fn template(&self, id_or_name: &str) -> Result<TemplateHead, StoreError> {
        crate::check_key("template", id_or_name)?;
        // One statement: by name first (what clients mostly send), by id
        // only when no template has that name.
        let mut res = self
            .run(
                "RETURN (SELECT * OMIT id FROM template WHERE name = $k LIMIT 1) \
                 || (SELECT * OMIT id FROM type::record('template', $k));",
                json!({"k": id_or_name}),
            )
            .await?;
        rows::<TemplateHead>(&mut res, 0)?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::NotFound(format!("template {id_or_name}")))
    }

    /// One revision of a template.
    pub async fn template_revision(
        &self,
        template_id: &TemplateId,
        revision: u32,
    ) -> Result<TemplateRevision, StoreError> {
        let mut res = self
            .run(
                "SELECT * OMIT id FROM type::record('template_revision', [$t, $r]);",
                json!({"t": template_id, "r": revision}),
            )
            .await?;
        rows(&mut res, 0)?.into_iter().next().ok_or_else(|| {
            StoreError::NotFound(format!("template {template_id} revision {revision}"))
        })
    }

    /// All templates by name.
    pub async fn templates(&self) -> Result<Vec<TemplateHead>, StoreError> {
        let mut res = self
            .run("SELECT * OMIT id FROM template ORDER BY name;", json!({}))
            .await?;
        rows(&mut res, 0)
    }

    /// One page of templates by name: `page` from 1, `page_size` clamped
    /// to 1..=100 (as runs are), with the total count.
    pub async fn list_templates(
        &self,
        page: u32,
        page_size: u32,
    ) -> Result<TemplatePage, StoreError> {
        let size = page_size.clamp(1, 100);
        let start = u64::from(page.max(1) - 1).saturating_mul(u64::from(size));
        // Both numbers are integers formatted here, never user text.
        let sql = format!(
            "SELECT * OMIT id FROM template ORDER BY name LIMIT {size} START {start};\n\
             SELECT count() AS n FROM template GROUP ALL;"
        );
        let mut res = self.run(&sql, json!({})).await?;
        let templates = rows(&mut res, 0)?;
        // No row at all when there are no templates.
        let total: Vec<Value> = res.take(1).map_err(|e| StoreError::Codec(e.to_string()))?;
        Ok(TemplatePage {
            templates,
            total: total.first().and_then(|r| r["n"].as_u64()).unwrap_or(0),
        })
    }

    /// A template's revisions, oldest first.
    pub async fn template_revisions(
        &self,
        template_id: &TemplateId,
    ) -> Result<Vec<TemplateRevision>, StoreError> {
        let mut res = self
            .run(
                "SELECT * OMIT id FROM template_revision WHERE templateId = $t ORDER BY revision;",
                json!({"t": template_id}),
            )
            .await?;
        rows(&mut res, 0)
    }

    /// One page of a template's revisions, oldest first (`page` from 1,
    /// `page_size` clamped to 1..=100), with the total count.
    pub async fn list_template_revisions(
        &self,
        template_id: &TemplateId,
        page: u32,
        page_size: u32,
    ) -> Result<RevisionPage, StoreError> {
        let size = page_size.clamp(1, 100);
        let start = u64::from(page.max(1) - 1).saturating_mul(u64::from(size));
        // Both numbers are integers formatted here, never user text.
        let sql = format!(
            "SELECT * OMIT id FROM template_revision WHERE templateId = $t ORDER BY revision LIMIT {size} START {start};\n\
             SELECT count() AS n FROM template_revision WHERE templateId = $t GROUP ALL;"
        );
        let mut res = self.run(&sql, json!({"t": template_id})).await?;
        let revisions = rows(&mut res, 0)?;
        let total: Vec<Value> = res.take(1).map_err(|e| StoreError::Codec(e.to_string()))?;
        Ok(RevisionPage {
            revisions,
            total: total.first().and_then(|r| r["n"].as_u64()).unwrap_or(0),
        })
    }

    /// Deletes a template and its revisions (runs keep their pinned copies).
    pub async fn delete_template(&self, template_id: &TemplateId) -> Result<(), StoreError> {
        self.run(
            "BEGIN TRANSACTION; DELETE type::record('template', $t); DELETE template_revision WHERE templateId = $t; COMMIT TRANSACTION;",
            json!({"t": template_id}),
        )
        .await
        .map(drop)
    }
}
