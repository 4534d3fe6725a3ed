//! RPC handlers. Each one checks who acts (the `Actor` in the context),
//! validates, and commits its state change together with its outbox event;
//! on any error nothing changes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, Utc};
use sqlx::{PgConnection, PgPool};
use vbp_bus::{Context, Outbox, RpcError};
use vbp_contracts::agreements::*;
use vbp_contracts::page::Window;
use vbp_kernel::{
    Actor, BasisPoints, Money, NationalCode, OrgId, OrgKind, RegionCode, RegionLevel, SharedClock,
    beijing_date,
};

use crate::domain::{self, Confirmation, Party, Settings};
use crate::store::{self, AgreementRow, PeriodRow, ProjectRow, Scope};

/// What every handler needs.
pub struct Svc {
    pub pool: PgPool,
    pub outbox: Outbox,
    pub clock: SharedClock,
    pub settings: Settings,
}

pub type Shared = Arc<Svc>;

type R<T> = Result<T, RpcError>;

fn actor(ctx: &Context) -> R<&Actor> {
    ctx.actor
        .as_ref()
        .ok_or_else(|| RpcError::forbidden("an authenticated actor is required"))
}

fn is_operator(a: &Actor) -> bool {
    a.org_kind == OrgKind::Operator
}

/// What an actor may see of hospital-scoped data.
fn scope_of(a: &Actor) -> Scope {
    match a.org_kind {
        OrgKind::Operator => Scope::all(),
        OrgKind::Bureau => Scope::region(a.region),
        OrgKind::Hospital => Scope::hospital(a.org),
        OrgKind::Manufacturer | OrgKind::Distributor => Scope::enterprise(a.org),
        OrgKind::Integrator => Scope::none(),
    }
}

/// Bureaus of a province or city (or operators) manage the directory of
/// their region.
fn require_directory_manager(a: &Actor, region: RegionCode) -> R<()> {
    if is_operator(a) {
        return Ok(());
    }
    if a.org_kind == OrgKind::Bureau
        && matches!(
            a.region.level(),
            RegionLevel::Province | RegionLevel::City | RegionLevel::National
        )
        && a.jurisdiction_contains(&region)
    {
        return Ok(());
    }
    Err(RpcError::forbidden(format!(
        "only a province or city bureau whose jurisdiction contains region {region} (or an operator) may manage its organisations"
    )))
}

fn require_province_bureau(a: &Actor, what: &str) -> R<()> {
    if is_operator(a)
        || (a.org_kind == OrgKind::Bureau
            && matches!(
                a.region.level(),
                RegionLevel::Province | RegionLevel::National
            ))
    {
        Ok(())
    } else {
        Err(RpcError::forbidden(format!(
            "only a province bureau or an operator may {what}"
        )))
    }
}

fn invalid(e: domain::Invalid) -> RpcError {
    RpcError::invalid(e.field, e.rule)
}

async fn begin(svc: &Svc) -> R<sqlx::Transaction<'static, sqlx::Postgres>> {
    Ok(svc.pool.begin().await?)
}

// ---------------------------------------------------------------------------
// Organisation directory
// ---------------------------------------------------------------------------

/// Validates a registration into a record (revision 1).
fn org_record(req: &RegisterOrg, field_prefix: &str) -> R<OrgRecord> {
    let f = |name: &str| format!("{field_prefix}{name}");
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(RpcError::invalid(
            f("name"),
            "name must be 1 to 200 characters",
        ));
    }
    if req.id.is_some_and(|id| id == OrgId::SYSTEM) {
        return Err(RpcError::invalid(
            f("id"),
            "the nil id is reserved for machine actors",
        ));
    }
    let mut rec = OrgRecord {
        org: req.id.unwrap_or_else(OrgId::new),
        kind: req.kind,
        name: name.to_owned(),
        region: req.region,
        nhsa_code: None,
        level: None,
        uscc: None,
        is_manufacturer: false,
        is_distributor: false,
        acts_for: Vec::new(),
        active: true,
        revision: 1,
    };
    match req.kind {
        OrgKind::Hospital => {
            let code = req.nhsa_code.as_deref().ok_or_else(|| {
                RpcError::invalid(f("nhsa_code"), "a hospital needs its NHSA institution code")
            })?;
            domain::validate_nhsa_code(code, req.region)
                .map_err(|e| RpcError::invalid(f("nhsa_code"), e))?;
            if req.region.level() != RegionLevel::County && req.region.level() != RegionLevel::City
            {
                return Err(RpcError::invalid(
                    f("region"),
                    "a hospital's region must be a city or county code",
                ));
            }
            rec.nhsa_code = Some(code.to_owned());
            rec.level = Some(req.level.unwrap_or(HospitalLevel::Ungraded));
        }
        OrgKind::Manufacturer | OrgKind::Distributor => {
            let code = req.uscc.as_deref().ok_or_else(|| {
                RpcError::invalid(
                    f("uscc"),
                    "an enterprise needs its unified social credit code",
                )
            })?;
            domain::validate_uscc(code).map_err(|e| RpcError::invalid(f("uscc"), e))?;
            rec.uscc = Some(code.to_owned());
            rec.is_manufacturer = req.is_manufacturer || req.kind == OrgKind::Manufacturer;
            rec.is_distributor = req.is_distributor || req.kind == OrgKind::Distributor;
        }
        OrgKind::Integrator => {
            rec.acts_for = req.acts_for.clone();
        }
        OrgKind::Bureau => {}
        OrgKind::Operator => {
            return Err(RpcError::invalid(
                f("kind"),
                "operators are not directory organisations",
            ));
        }
    }
    if req.kind != OrgKind::Hospital && (req.nhsa_code.is_some() || req.level.is_some()) {
        return Err(RpcError::invalid(
            f("nhsa_code"),
            "only hospitals have an NHSA institution code and level",
        ));
    }
    if !matches!(req.kind, OrgKind::Manufacturer | OrgKind::Distributor) && req.uscc.is_some() {
        return Err(RpcError::invalid(
            f("uscc"),
            "only manufacturers and distributors are registered with a credit code here",
        ));
    }
    if req.kind != OrgKind::Integrator && !req.acts_for.is_empty() {
        return Err(RpcError::invalid(
            f("acts_for"),
            "only integrators act for hospitals",
        ));
    }
    Ok(rec)
}

async fn check_acts_for(conn: &mut PgConnection, hospitals: &[OrgId], field: &str) -> R<()> {
    for (i, h) in hospitals.iter().enumerate() {
        match store::get_org(conn, *h).await? {
            Some(o) if o.record.kind == OrgKind::Hospital => {}
            _ => {
                return Err(RpcError::invalid(
                    format!("{field}[{i}]"),
                    format!("{h} is not a registered hospital"),
                ));
            }
        }
    }
    Ok(())
}

fn map_unique(e: sqlx::Error, field_prefix: &str) -> RpcError {
    match store::is_unique_violation(&e) {
        Some(c) if c.contains("nhsa") => RpcError::conflict(
            "duplicate_nhsa_code",
            "another organisation has this NHSA institution code",
        )
        .with_field(format!("{field_prefix}nhsa_code")),
        Some(c) if c.contains("uscc") => RpcError::conflict(
            "duplicate_uscc",
            "another organisation has this unified social credit code",
        )
        .with_field(format!("{field_prefix}uscc")),
        Some(_) => RpcError::conflict("duplicate_org", "an organisation with this id exists")
            .with_field(format!("{field_prefix}id")),
        None => e.into(),
    }
}

/// Registers one org inside `conn`'s transaction (also used by import and demo).
pub async fn register_org_in(
    conn: &mut PgConnection,
    outbox: &Outbox,
    ctx: &Context,
    req: &RegisterOrg,
    now: DateTime<Utc>,
    field_prefix: &str,
) -> R<OrgView> {
    let rec = org_record(req, field_prefix)?;
    check_acts_for(conn, &rec.acts_for, &format!("{field_prefix}acts_for")).await?;
    store::insert_org(conn, &rec, now)
        .await
        .map_err(|e| map_unique(e, field_prefix))?;
    outbox
        .append(
            conn,
            ctx,
            &OrgRegistered {
                record: rec.clone(),
                registered_at: now,
            },
        )
        .await?;
    Ok(OrgView {
        record: rec,
        registered_at: now,
        updated_at: now,
    })
}

pub async fn org_register(svc: Shared, ctx: Context, req: RegisterOrg) -> R<OrgView> {
    let a = actor(&ctx)?;
    require_directory_manager(a, req.region)?;
    if req.id.is_some() && !is_operator(a) {
        return Err(RpcError::invalid(
            "id",
            "only operators may choose an org id",
        ));
    }
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    let view = register_org_in(&mut tx, &svc.outbox, &ctx, &req, now, "").await?;
    tx.commit().await?;
    Ok(view)
}

pub async fn org_import(svc: Shared, ctx: Context, req: ImportOrgs) -> R<ImportOrgsResult> {
    let rows: Vec<(u32, RegisterOrg)> = req
        .rows
        .into_iter()
        .enumerate()
        .map(|(i, r)| (i as u32 + 2, r))
        .collect();
    import_orgs(&svc, &ctx, &rows, None).await
}

pub async fn org_import_file(
    svc: Shared,
    ctx: Context,
    req: ImportOrgsFile,
) -> R<ImportOrgsResult> {
    actor(&ctx)?;
    let table = uploaded_table(&req.file_name, &req.content_base64)?;
    let (rows, layout) = domain::org_rows_from_table(&table).map_err(import_rejected)?;
    import_orgs(&svc, &ctx, &rows, Some(&layout)).await
}

/// Registers every row (each with its row number), all or nothing,
/// reporting every bad row.
async fn import_orgs(
    svc: &Svc,
    ctx: &Context,
    rows: &[(u32, RegisterOrg)],
    layout: Option<&domain::SheetLayout>,
) -> R<ImportOrgsResult> {
    let a = actor(ctx)?;
    if rows.is_empty() {
        return Err(RpcError::invalid(
            "rows",
            "an import needs at least one row",
        ));
    }
    if rows.len() > svc.settings.max_import_rows {
        return Err(RpcError::invalid(
            "rows",
            format!(
                "an import holds at most {} rows, got {}",
                svc.settings.max_import_rows,
                rows.len()
            ),
        ));
    }
    let now = svc.clock.now();
    let mut tx = begin(svc).await?;
    let mut errors = Vec::new();
    let mut imported = Vec::new();
    for (i, (row_no, row)) in rows.iter().enumerate() {
        let prefix = format!("rows[{i}].");
        let res = async {
            require_directory_manager(a, row.region)
                .map_err(|e| e.with_field(format!("{prefix}region")))?;
            if row.id.is_some() && !is_operator(a) {
                return Err(RpcError::invalid(
                    format!("{prefix}id"),
                    "only operators may choose an org id",
                ));
            }
            // A savepoint per row, so every bad row is reported.
            let mut sp = sqlx::Connection::begin(&mut *tx).await?;
            let v = register_org_in(&mut sp, &svc.outbox, ctx, row, now, &prefix).await?;
            sp.commit().await?;
            Ok(v)
        }
        .await;
        match res {
            Ok(v) => imported.push(v.record.org),
            Err(e) => errors.push(ImportError {
                row: *row_no,
                column: e
                    .0
                    .field
                    .clone()
                    .unwrap_or_default()
                    .trim_start_matches(&prefix)
                    .to_owned(),
                rule: e.0.message.clone(),
                ..ImportError::default()
            }),
        }
    }
    if !errors.is_empty() {
        tx.rollback().await?;
        if let Some(l) = layout {
            l.annotate(&mut errors);
        }
        return Err(import_rejected(errors));
    }
    tx.commit().await?;
    Ok(ImportOrgsResult { imported })
}

fn import_rejected(errors: Vec<ImportError>) -> RpcError {
    let n = errors.len();
    RpcError::new(
        422,
        "import_rejected",
        format!("{n} bad cell(s); nothing was imported"),
    )
    .with_details(serde_json::to_value(ImportRejected { errors }).unwrap_or_default())
}

pub async fn org_update(svc: Shared, ctx: Context, req: UpdateOrg) -> R<OrgView> {
    let a = actor(&ctx)?;
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    let cur = store::get_org_for_update(&mut tx, req.org)
        .await?
        .ok_or_else(|| {
            RpcError::not_found(format!("organisation {} is not registered", req.org))
        })?;
    require_directory_manager(a, cur.record.region)?;
    if let Some(rev) = req.expected_revision
        && rev != cur.record.revision
    {
        return Err(RpcError::conflict(
            "stale_revision",
            format!(
                "organisation is at revision {}, not {rev}",
                cur.record.revision
            ),
        )
        .with_field("expected_revision"));
    }
    let mut rec = cur.record.clone();
    if let Some(name) = &req.name {
        let n = name.trim();
        if n.is_empty() || n.chars().count() > 200 {
            return Err(RpcError::invalid(
                "name",
                "name must be 1 to 200 characters",
            ));
        }
        rec.name = n.to_owned();
    }
    if let Some(level) = req.level {
        if rec.kind != OrgKind::Hospital {
            return Err(RpcError::invalid("level", "only hospitals have a level"));
        }
        rec.level = Some(level);
    }
    let enterprise = matches!(rec.kind, OrgKind::Manufacturer | OrgKind::Distributor);
    if let Some(m) = req.is_manufacturer {
        if !enterprise {
            return Err(RpcError::invalid(
                "is_manufacturer",
                "only enterprises have roles",
            ));
        }
        rec.is_manufacturer = m;
    }
    if let Some(d) = req.is_distributor {
        if !enterprise {
            return Err(RpcError::invalid(
                "is_distributor",
                "only enterprises have roles",
            ));
        }
        rec.is_distributor = d;
    }
    if enterprise && !rec.is_manufacturer && !rec.is_distributor {
        return Err(RpcError::invalid(
            "is_manufacturer",
            "an enterprise must be a manufacturer, a distributor or both",
        ));
    }
    if let Some(acts_for) = &req.acts_for {
        if rec.kind != OrgKind::Integrator {
            return Err(RpcError::invalid(
                "acts_for",
                "only integrators act for hospitals",
            ));
        }
        check_acts_for(&mut tx, acts_for, "acts_for").await?;
        rec.acts_for = acts_for.clone();
    }
    if let Some(active) = req.active {
        rec.active = active;
    }
    if rec == cur.record {
        return Ok(cur);
    }
    rec.revision += 1;
    store::update_org(&mut tx, &rec, now).await?;
    svc.outbox
        .append(
            &mut tx,
            &ctx,
            &OrgUpdated {
                record: rec.clone(),
                updated_at: now,
            },
        )
        .await?;
    tx.commit().await?;
    Ok(OrgView {
        record: rec,
        registered_at: cur.registered_at,
        updated_at: now,
    })
}

fn may_see_org(a: &Actor, o: &OrgView) -> bool {
    is_operator(a) || a.org == o.record.org || a.jurisdiction_contains(&o.record.region)
}

pub async fn org_get(svc: Shared, ctx: Context, req: GetOrg) -> R<OrgView> {
    let a = actor(&ctx)?;
    let mut conn = svc.pool.acquire().await?;
    match store::get_org(&mut conn, req.org).await? {
        Some(o) if may_see_org(a, &o) => Ok(o),
        _ => Err(RpcError::not_found(format!(
            "organisation {} is not registered or not visible to you",
            req.org
        ))),
    }
}

pub async fn org_list(svc: Shared, ctx: Context, req: ListOrgs) -> R<Page<OrgView>> {
    let a = actor(&ctx)?;
    let w = Window::new(req.page, req.page_size)?;
    let scope = match a.org_kind {
        OrgKind::Operator => Scope::all(),
        OrgKind::Bureau => Scope::region(a.region),
        OrgKind::Integrator => Scope {
            kind: "integrator",
            ..Scope::hospital(a.org)
        },
        _ => Scope::hospital(a.org),
    };
    let mut conn = svc.pool.acquire().await?;
    let (items, total) = store::list_orgs(
        &mut conn,
        &store::OrgFilter {
            kind: req.kind,
            region: req.region,
            q: req.q.clone(),
        },
        &scope,
        w.limit(),
        w.offset(),
    )
    .await?;
    Ok(w.page(items, total))
}

// ---------------------------------------------------------------------------
// Projects and periods
// ---------------------------------------------------------------------------

fn validate_project_code(code: &str) -> R<()> {
    let ok = !code.is_empty()
        && code.len() <= 64
        && code
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(RpcError::invalid(
            "code",
            "project code must be 1 to 64 characters of A-Z, 0-9, '-' and '_', e.g. ZJHCCG-2022-01",
        ))
    }
}

pub async fn register_project_in(
    conn: &mut PgConnection,
    outbox: &Outbox,
    ctx: &Context,
    req: &RegisterProject,
    now: DateTime<Utc>,
) -> R<ProjectRow> {
    validate_project_code(&req.code)?;
    if req.name.trim().is_empty() {
        return Err(RpcError::invalid("name", "name must not be empty"));
    }
    if req.organiser.trim().is_empty() {
        return Err(RpcError::invalid(
            "organiser",
            "organiser must not be empty",
        ));
    }
    if req.provinces.is_empty() {
        return Err(RpcError::invalid(
            "provinces",
            "at least one participating province",
        ));
    }
    for (i, p) in req.provinces.iter().enumerate() {
        if p.level() != RegionLevel::Province {
            return Err(RpcError::invalid(
                format!("provinces[{i}]"),
                format!("{p} is not a province code (PP0000)"),
            ));
        }
    }
    if req.product_groups.is_empty() {
        return Err(RpcError::invalid(
            "product_groups",
            "at least one product group",
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, g) in req.product_groups.iter().enumerate() {
        if g.code.trim().is_empty() || g.name.trim().is_empty() {
            return Err(RpcError::invalid(
                format!("product_groups[{i}]"),
                "a product group needs a code and a name",
            ));
        }
        if !seen.insert(g.code.clone()) {
            return Err(RpcError::invalid(
                format!("product_groups[{i}].code"),
                format!("product group code {} repeats", g.code),
            ));
        }
    }
    let row = ProjectRow {
        id: req.id.unwrap_or_else(ProjectId::new),
        code: req.code.clone(),
        name: req.name.trim().to_owned(),
        organiser: req.organiser.trim().to_owned(),
        category: req.category,
        provinces: req.provinces.clone(),
        product_groups: req.product_groups.clone(),
        registered_at: now,
    };
    store::insert_project(conn, &row).await.map_err(|e| {
        if store::is_unique_violation(&e).is_some() {
            RpcError::conflict("duplicate_project", format!("project {} exists", req.code))
                .with_field("code")
        } else {
            e.into()
        }
    })?;
    outbox
        .append(
            conn,
            ctx,
            &ProjectRegistered {
                project: row.id,
                code: row.code.clone(),
                name: row.name.clone(),
                organiser: row.organiser.clone(),
                category: row.category,
                provinces: row.provinces.clone(),
                product_groups: row.product_groups.clone(),
                registered_at: now,
            },
        )
        .await?;
    Ok(row)
}

fn project_view(p: &ProjectRow, periods: &[PeriodRow], now: DateTime<Utc>) -> ProjectView {
    ProjectView {
        project: p.id,
        code: p.code.clone(),
        name: p.name.clone(),
        organiser: p.organiser.clone(),
        category: p.category,
        provinces: p.provinces.clone(),
        product_groups: p.product_groups.clone(),
        registered_at: p.registered_at,
        periods: periods.iter().map(|x| x.view(now)).collect(),
    }
}

pub async fn project_register(svc: Shared, ctx: Context, req: RegisterProject) -> R<ProjectView> {
    let a = actor(&ctx)?;
    require_province_bureau(a, "register projects")?;
    if a.org_kind == OrgKind::Bureau
        && a.region.level() == RegionLevel::Province
        && !req.provinces.contains(&a.region)
    {
        return Err(RpcError::invalid(
            "provinces",
            format!(
                "a province bureau registers projects its province ({}) takes part in",
                a.region
            ),
        ));
    }
    if req.id.is_some() && !is_operator(a) {
        return Err(RpcError::invalid(
            "id",
            "only operators may choose a project id",
        ));
    }
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    let row = register_project_in(&mut tx, &svc.outbox, &ctx, &req, now).await?;
    tx.commit().await?;
    Ok(project_view(&row, &[], now))
}

pub async fn project_get(svc: Shared, ctx: Context, req: GetProject) -> R<ProjectView> {
    actor(&ctx)?;
    let mut conn = svc.pool.acquire().await?;
    let p = store::get_project(&mut conn, req.project)
        .await?
        .ok_or_else(|| RpcError::not_found(format!("project {} does not exist", req.project)))?;
    let periods = store::periods_of(&mut conn, p.id).await?;
    Ok(project_view(&p, &periods, svc.clock.now()))
}

pub async fn project_list(svc: Shared, ctx: Context, req: ListProjects) -> R<Page<ProjectView>> {
    actor(&ctx)?;
    let w = Window::new(req.page, req.page_size)?;
    let mut conn = svc.pool.acquire().await?;
    let (rows, total) = store::list_projects(&mut conn, w.limit(), w.offset()).await?;
    let now = svc.clock.now();
    let mut items = Vec::new();
    for p in rows {
        let periods = store::periods_of(&mut conn, p.id).await?;
        items.push(project_view(&p, &periods, now));
    }
    Ok(w.page(items, total))
}

fn period_opened(p: &PeriodRow) -> PeriodOpened {
    PeriodOpened {
        period: p.id,
        project: p.project,
        project_code: p.project_code.clone(),
        number: p.number,
        starts_at: p.starts_at,
        ends_at: p.ends_at,
        paper_deadline: p.paper_deadline,
        carried_over_from: p.carried_over_from,
        opened_at: p.opened_at,
    }
}

fn list_published(
    p: &PeriodRow,
    revision: i32,
    items: Vec<SupplyItem>,
    at: DateTime<Utc>,
) -> SupplyListPublished {
    SupplyListPublished {
        period: p.id,
        project: p.project,
        project_code: p.project_code.clone(),
        period_number: p.number,
        starts_at: p.starts_at,
        ends_at: p.ends_at,
        revision,
        items,
        published_at: at,
    }
}

pub async fn open_period_in(
    conn: &mut PgConnection,
    outbox: &Outbox,
    ctx: &Context,
    req: &OpenPeriod,
    now: DateTime<Utc>,
) -> R<PeriodRow> {
    let project = store::get_project(conn, req.project)
        .await?
        .ok_or_else(|| {
            RpcError::invalid("project", format!("project {} does not exist", req.project))
        })?;
    if !(1..=99).contains(&req.number) {
        return Err(RpcError::invalid("number", "period number must be 1 to 99"));
    }
    let (starts_at, ends_at) =
        domain::period_bounds(req.first_day, req.last_day).map_err(invalid)?;
    if let Some(d) = req.paper_deadline
        && d < starts_at - Duration::days(366)
    {
        return Err(RpcError::invalid(
            "paper_deadline",
            "paper deadline lies more than a year before the period starts",
        ));
    }
    let prev = if req.number > 1 {
        store::period_by_number(conn, project.id, req.number - 1).await?
    } else {
        None
    };
    if let Some(prev) = &prev
        && starts_at < prev.ends_at
    {
        return Err(RpcError::invalid(
            "first_day",
            format!(
                "period {} must start at or after the end of period {} ({})",
                req.number,
                prev.number,
                prev.ends_at.with_timezone(&vbp_kernel::BEIJING)
            ),
        ));
    }
    let carried_from = if req.carry_over {
        let prev = prev.as_ref().ok_or_else(|| {
            RpcError::invalid(
                "carry_over",
                format!(
                    "period {} has no period {} whose supply list could be carried over",
                    req.number,
                    req.number - 1
                ),
            )
        })?;
        if prev.supply_revision == 0 {
            return Err(RpcError::invalid(
                "carry_over",
                format!(
                    "period {} has no published supply list to carry over",
                    prev.number
                ),
            ));
        }
        Some(prev.id)
    } else {
        None
    };
    let row = PeriodRow {
        id: req.id.unwrap_or_else(PeriodId::new),
        project: project.id,
        project_code: project.code.clone(),
        number: req.number,
        starts_at,
        ends_at,
        first_day: req.first_day,
        last_day: req.last_day,
        paper_deadline: req.paper_deadline,
        carried_over_from: carried_from,
        supply_revision: 0,
        supply_published_at: None,
        window_opened_at: None,
        window_closes_at: None,
        opened_at: now,
    };
    store::insert_period(conn, &row).await.map_err(|e| {
        if store::is_unique_violation(&e).is_some() {
            RpcError::conflict(
                "duplicate_period",
                format!("project {} already has period {}", project.code, req.number),
            )
            .with_field("number")
        } else {
            e.into()
        }
    })?;
    outbox.append(conn, ctx, &period_opened(&row)).await?;
    store::arm_weekly_snapshot(conn, &row, now, Some(ctx.correlation)).await?;
    let mut row = row;
    if let Some(from) = carried_from {
        let items = store::items(conn, from, "published").await?;
        let rev = store::publish_items(conn, row.id, &items, now).await?;
        store::replace_items(conn, row.id, "draft", &items).await?;
        row.supply_revision = rev;
        row.supply_published_at = Some(now);
        outbox
            .append(conn, ctx, &list_published(&row, rev, items, now))
            .await?;
    }
    Ok(row)
}

pub async fn period_open(svc: Shared, ctx: Context, req: OpenPeriod) -> R<PeriodView> {
    let a = actor(&ctx)?;
    require_province_bureau(a, "open agreement periods")?;
    if req.id.is_some() && !is_operator(a) {
        return Err(RpcError::invalid(
            "id",
            "only operators may choose a period id",
        ));
    }
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    let row = open_period_in(&mut tx, &svc.outbox, &ctx, &req, now).await?;
    tx.commit().await?;
    Ok(row.view(now))
}

async fn period_or_404(conn: &mut PgConnection, id: PeriodId, field: &str) -> R<PeriodRow> {
    store::get_period(conn, id)
        .await?
        .ok_or_else(|| RpcError::invalid(field, format!("period {id} does not exist")))
}

pub async fn period_get(svc: Shared, ctx: Context, req: GetPeriod) -> R<PeriodView> {
    actor(&ctx)?;
    let mut conn = svc.pool.acquire().await?;
    let p = store::get_period(&mut conn, req.period)
        .await?
        .ok_or_else(|| RpcError::not_found(format!("period {} does not exist", req.period)))?;
    Ok(p.view(svc.clock.now()))
}

// ---------------------------------------------------------------------------
// Supply lists
// ---------------------------------------------------------------------------

/// Validates rows and replaces the draft, all or nothing.
pub async fn import_rows_in(
    conn: &mut PgConnection,
    period: PeriodId,
    rows: &[SupplyRow],
    max_rows: usize,
) -> R<u32> {
    import_sheet_rows_in(conn, period, rows, max_rows, None).await
}

/// The same for rows read from a file laid out as `layout`: errors carry the
/// file's row numbers, header texts and cell references.
pub async fn import_sheet_rows_in(
    conn: &mut PgConnection,
    period: PeriodId,
    rows: &[SupplyRow],
    max_rows: usize,
    layout: Option<&domain::SheetLayout>,
) -> R<u32> {
    let first_row = layout.map_or(2, |l| l.first_data_row());
    let rejected = |mut errors: Vec<ImportError>| {
        if let Some(l) = layout {
            l.annotate(&mut errors);
        }
        import_rejected(errors)
    };
    let p = store::lock_period(conn, period)
        .await?
        .ok_or_else(|| RpcError::invalid("period", format!("period {period} does not exist")))?;
    if rows.len() > max_rows {
        return Err(RpcError::invalid(
            "rows",
            format!(
                "an import holds at most {max_rows} rows, got {}",
                rows.len()
            ),
        ));
    }
    let project = store::get_project(conn, p.project)
        .await?
        .ok_or_else(|| RpcError::internal("period without project"))?;
    let ctx = domain::SupplyContext {
        product_groups: project
            .product_groups
            .iter()
            .map(|g| g.code.clone())
            .collect(),
        manufacturers: store::manufacturers_by_uscc(conn).await?,
    };
    let items = domain::validate_supply_rows(rows, &ctx, first_row).map_err(rejected)?;
    // A drug project lists drug codes, a consumable project consumable codes.
    let mut errors = Vec::new();
    for (i, it) in items.iter().enumerate() {
        if it.national_code.kind() != project.category {
            errors.push(ImportError {
                row: i as u32 + first_row,
                column: "national_code".into(),
                rule: format!(
                    "project {} lists {:?} codes; {} is not one",
                    project.code, project.category, it.national_code
                ),
                ..ImportError::default()
            });
        }
    }
    if !errors.is_empty() {
        return Err(rejected(errors));
    }
    store::replace_items(conn, period, "draft", &items).await?;
    Ok(items.len() as u32)
}

fn require_list_manager(a: &Actor) -> R<()> {
    require_province_bureau(a, "manage supply lists")
}

pub async fn supply_list_import(
    svc: Shared,
    ctx: Context,
    req: ImportSupplyList,
) -> R<ImportSupplyListResult> {
    require_list_manager(actor(&ctx)?)?;
    let mut tx = begin(&svc).await?;
    let rows = import_rows_in(&mut tx, req.period, &req.rows, svc.settings.max_import_rows).await?;
    tx.commit().await?;
    Ok(ImportSupplyListResult {
        period: req.period,
        rows,
    })
}

/// Reads a `.csv` (UTF-8) or `.xlsx` (first worksheet) into a table whose
/// row `i` is the file's row `i + 1`.
pub fn read_table(file_name: &str, bytes: &[u8]) -> R<Vec<Vec<String>>> {
    match domain::file_kind(file_name).map_err(|e| RpcError::invalid("file_name", e))? {
        domain::FileKind::Csv => {
            let text = std::str::from_utf8(bytes).map_err(|_| {
                RpcError::invalid("content_base64", "a .csv file must be UTF-8 text")
            })?;
            domain::parse_csv(text).map_err(|e| RpcError::invalid("content_base64", e))
        }
        domain::FileKind::Xlsx => {
            sheets::read_xlsx(bytes).map_err(|e| RpcError::invalid("content_base64", e))
        }
    }
}

/// Decodes an uploaded file (at most 16 MiB) into a table.
fn uploaded_table(file_name: &str, content_base64: &str) -> R<Vec<Vec<String>>> {
    let bytes = sheets::decode_base64(content_base64)
        .map_err(|e| RpcError::invalid("content_base64", e))?;
    if bytes.len() > 16 * 1024 * 1024 {
        return Err(RpcError::invalid(
            "content_base64",
            "a file may be at most 16 MiB",
        ));
    }
    read_table(file_name, &bytes)
}

pub async fn supply_list_import_file(
    svc: Shared,
    ctx: Context,
    req: ImportSupplyListFile,
) -> R<ImportSupplyListResult> {
    require_list_manager(actor(&ctx)?)?;
    let table = uploaded_table(&req.file_name, &req.content_base64)?;
    let (rows, layout) = domain::supply_rows_from_table(&table).map_err(import_rejected)?;
    let mut tx = begin(&svc).await?;
    let n = import_sheet_rows_in(
        &mut tx,
        req.period,
        &rows,
        svc.settings.max_import_rows,
        Some(&layout),
    )
    .await?;
    tx.commit().await?;
    Ok(ImportSupplyListResult {
        period: req.period,
        rows: n,
    })
}

pub async fn publish_in(
    conn: &mut PgConnection,
    outbox: &Outbox,
    ctx: &Context,
    period: PeriodId,
    now: DateTime<Utc>,
) -> R<SupplyListView> {
    let p = store::lock_period(conn, period)
        .await?
        .ok_or_else(|| RpcError::invalid("period", format!("period {period} does not exist")))?;
    let draft = store::items(conn, period, "draft").await?;
    if draft.is_empty() {
        return Err(RpcError::conflict(
            "empty_draft",
            "the period has no draft supply list; import one first",
        )
        .with_field("period"));
    }
    let current = store::items(conn, period, "published").await?;
    if p.supply_revision > 0 && current == draft {
        return Ok(SupplyListView {
            period,
            status: SupplyListStatus::Published,
            revision: p.supply_revision,
            published_at: p.supply_published_at,
            items: current,
        });
    }
    let rev = store::publish_items(conn, period, &draft, now).await?;
    outbox
        .append(conn, ctx, &list_published(&p, rev, draft.clone(), now))
        .await?;
    Ok(SupplyListView {
        period,
        status: SupplyListStatus::Published,
        revision: rev,
        published_at: Some(now),
        items: draft,
    })
}

pub async fn supply_list_publish(
    svc: Shared,
    ctx: Context,
    req: PublishSupplyList,
) -> R<SupplyListView> {
    require_list_manager(actor(&ctx)?)?;
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    let v = publish_in(&mut tx, &svc.outbox, &ctx, req.period, now).await?;
    tx.commit().await?;
    Ok(v)
}

pub async fn supply_list_get(svc: Shared, ctx: Context, req: GetSupplyList) -> R<SupplyListView> {
    let a = actor(&ctx)?;
    if req.draft && require_list_manager(a).is_err() {
        return Err(RpcError::forbidden("only list managers see drafts"));
    }
    let mut conn = svc.pool.acquire().await?;
    let p = period_or_404(&mut conn, req.period, "period").await?;
    let status = if req.draft { "draft" } else { "published" };
    let items = store::items(&mut conn, req.period, status).await?;
    Ok(SupplyListView {
        period: p.id,
        status: if req.draft {
            SupplyListStatus::Draft
        } else {
            SupplyListStatus::Published
        },
        revision: p.supply_revision,
        published_at: p.supply_published_at,
        items,
    })
}

// ---------------------------------------------------------------------------
// Spreadsheet exports
// ---------------------------------------------------------------------------

use vbp_platform::sheets::{self, Cell, Column, col};

/// The supply-list sheet: the import's column names (the informational 序号
/// and 生产企业名称 are skipped on import), so an export imports back.
const SUPPLY_SHEET: [Column; 9] = [
    col("序号", 6.0),
    col("国家医保耗材编码", 30.0),
    col("通用名", 16.0),
    col("规格型号", 18.0),
    col("单位", 6.0),
    col("生产企业统一社会信用代码", 22.0),
    col("生产企业名称", 30.0),
    col("中选价格(元)", 12.0),
    col("产品组", 8.0),
];

const PROGRESS_SHEET: [Column; 17] = [
    col("行政区划 region", 10.0),
    col("医院 hospital", 28.0),
    col("国家医保耗材编码 national_code", 30.0),
    col("通用名 generic_name", 16.0),
    col("规格型号 spec_model", 16.0),
    col("生产企业 manufacturer", 28.0),
    col("产品组 product_group", 10.0),
    col("协议采购量 agreed_quantity", 12.0),
    col("已验收数量 accepted_quantity", 12.0),
    col("已验收金额(元) accepted_amount_yuan", 16.0),
    col("超量数量 over_volume_quantity", 12.0),
    col("采购进度 progress", 10.0),
    col("序时进度 time_progress", 10.0),
    col("进度分类", 12.0),
    col("class", 12.0),
    col("最近验收 last_accepted_at", 18.0),
    col("一刀切 sudden_stop", 8.0),
];

fn exported(
    settings: &Settings,
    file_name: String,
    sheet: &str,
    columns: &[Column],
    rows: Vec<Vec<Cell>>,
) -> R<ExportedFile> {
    sheets::xlsx_export(
        file_name,
        sheet,
        columns,
        rows,
        settings.max_export_bytes,
        "region, hospital, national_code, class",
    )
}

/// `ZJHCCG-2022-01_P2_{what}.xlsx`: ASCII only, so any client can use it as is.
fn export_name(p: &PeriodRow, what: &str) -> String {
    let code: String = p
        .project_code
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{code}_P{}_{what}.xlsx", p.number)
}

pub async fn supply_list_export(
    svc: Shared,
    ctx: Context,
    req: ExportSupplyList,
) -> R<ExportedFile> {
    let a = actor(&ctx)?;
    if req.draft && require_list_manager(a).is_err() {
        return Err(RpcError::forbidden("only list managers see drafts"));
    }
    let mut conn = svc.pool.acquire().await?;
    let p = period_or_404(&mut conn, req.period, "period").await?;
    let status = if req.draft { "draft" } else { "published" };
    let items = store::items(&mut conn, req.period, status).await?;
    if items.is_empty() {
        return Err(RpcError::not_found(format!(
            "period {} has no {status} supply list",
            p.number
        )));
    }
    let mut uscc: HashMap<OrgId, String> = HashMap::new();
    let mut rows = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        if let std::collections::hash_map::Entry::Vacant(slot) = uscc.entry(it.manufacturer) {
            let code = store::get_org(&mut conn, it.manufacturer)
                .await?
                .and_then(|o| o.record.uscc)
                .unwrap_or_default();
            slot.insert(code);
        }
        rows.push(vec![
            Cell::Int(i as i64 + 1),
            it.national_code.as_str().into(),
            it.generic_name.as_str().into(),
            it.spec_model.as_str().into(),
            it.unit.as_str().into(),
            // The credit code, or the directory id if the org has none.
            match uscc.get(&it.manufacturer) {
                Some(c) if !c.is_empty() => c.as_str().into(),
                _ => it.manufacturer.to_string().into(),
            },
            it.manufacturer_name.as_str().into(),
            it.winning_price_fen.to_string().into(),
            it.product_group.as_str().into(),
        ]);
    }
    let what = if req.draft {
        "supply_list_draft"
    } else {
        "supply_list"
    };
    exported(
        &svc.settings,
        export_name(&p, what),
        "中选产品供应清单",
        &SUPPLY_SHEET,
        rows,
    )
}

pub async fn progress_export(svc: Shared, ctx: Context, req: ExportProgress) -> R<ExportedFile> {
    let a = actor(&ctx)?;
    let at = as_of(svc.clock.now(), req.as_of)?;
    let mut conn = svc.pool.acquire().await?;
    let p = period_or_404(&mut conn, req.period, "period").await?;
    let facts = store::progress_facts(
        &mut conn,
        req.period,
        req.hospital,
        req.region,
        req.national_code.as_ref(),
        &scope_of(a),
    )
    .await?;
    let items = published_map(&mut conn, req.period).await?;
    let (elapsed, total) = domain::elapsed_days(p.starts_at, p.ends_at, at);
    let time_progress = domain::time_progress_bp(elapsed, total).to_string();
    let rows: Vec<Vec<Cell>> = facts
        .iter()
        .map(|f| (f, progress_row(f, &p, at, &svc.settings)))
        .filter(|(_, r)| req.class.is_none_or(|c| r.class == c))
        .map(|(f, r)| {
            let item = items.get(&f.national_code);
            let text = |v: Option<&String>| v.map_or(Cell::Empty, |s| s.as_str().into());
            vec![
                r.hospital_region.to_string().into(),
                r.hospital_name.as_str().into(),
                r.national_code.as_str().into(),
                text(item.map(|i| &i.generic_name)),
                text(item.map(|i| &i.spec_model)),
                text(item.map(|i| &i.manufacturer_name)),
                r.product_group.as_str().into(),
                Cell::Int(r.agreed_quantity),
                Cell::Int(r.accepted_quantity),
                r.accepted_amount_fen.to_string().into(),
                Cell::Int(r.over_volume_quantity),
                r.progress_bp.map_or(Cell::Empty, |b| b.to_string().into()),
                time_progress.as_str().into(),
                domain::class_zh(r.class).into(),
                r.class.as_str().into(),
                r.last_accepted_at.map_or(Cell::Empty, |t| {
                    t.with_timezone(&vbp_kernel::BEIJING)
                        .format("%Y-%m-%d %H:%M")
                        .to_string()
                        .into()
                }),
                (if r.sudden_stop { "是" } else { "否" }).into(),
            ]
        })
        .collect();
    let date = beijing_date(at).format("%Y%m%d");
    exported(
        &svc.settings,
        export_name(&p, &format!("progress_{date}")),
        "采购进度",
        &PROGRESS_SHEET,
        rows,
    )
}

// ---------------------------------------------------------------------------
// Volume reports and agreed volumes
// ---------------------------------------------------------------------------

pub async fn volume_window_open(
    svc: Shared,
    ctx: Context,
    req: OpenVolumeWindow,
) -> R<VolumeWindowView> {
    require_province_bureau(actor(&ctx)?, "open the volume-report window")?;
    let now = svc.clock.now();
    if req.closes_at <= now {
        return Err(RpcError::invalid(
            "closes_at",
            "the window must close in the future",
        ));
    }
    let mut tx = begin(&svc).await?;
    store::lock_period(&mut tx, req.period)
        .await?
        .ok_or_else(|| RpcError::invalid("period", "period does not exist"))?;
    store::set_window(&mut tx, req.period, Some(now), Some(req.closes_at)).await?;
    tx.commit().await?;
    Ok(VolumeWindowView {
        period: req.period,
        open: true,
        opened_at: Some(now),
        closes_at: Some(req.closes_at),
    })
}

pub async fn volume_window_close(
    svc: Shared,
    ctx: Context,
    req: CloseVolumeWindow,
) -> R<VolumeWindowView> {
    require_province_bureau(actor(&ctx)?, "close the volume-report window")?;
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    let p = store::lock_period(&mut tx, req.period)
        .await?
        .ok_or_else(|| RpcError::invalid("period", "period does not exist"))?;
    if !p.window_open(now) {
        return Err(RpcError::conflict(
            "window_not_open",
            "the volume-report window is not open",
        ));
    }
    store::set_window(&mut tx, req.period, p.window_opened_at, Some(now)).await?;
    tx.commit().await?;
    Ok(VolumeWindowView {
        period: req.period,
        open: false,
        opened_at: p.window_opened_at,
        closes_at: Some(now),
    })
}

/// The published items of a period by code.
async fn published_map(
    conn: &mut PgConnection,
    period: PeriodId,
) -> R<BTreeMap<NationalCode, SupplyItem>> {
    Ok(store::items(conn, period, "published")
        .await?
        .into_iter()
        .map(|i| (i.national_code.clone(), i))
        .collect())
}

fn check_group_lines(
    lines: &[QuantityLine],
    group: &str,
    items: &BTreeMap<NationalCode, SupplyItem>,
) -> R<()> {
    if !items.values().any(|i| i.product_group == group) {
        return Err(RpcError::invalid(
            "product_group",
            format!("product group {group:?} has no product on the published supply list"),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, l) in lines.iter().enumerate() {
        match items.get(&l.national_code) {
            Some(it) if it.product_group == group => {}
            Some(it) => {
                return Err(RpcError::invalid(
                    format!("lines[{i}].national_code"),
                    format!(
                        "{} belongs to product group {}, not {group}",
                        l.national_code, it.product_group
                    ),
                ));
            }
            None => {
                return Err(RpcError::invalid(
                    format!("lines[{i}].national_code"),
                    format!(
                        "{} is not on the period's published supply list",
                        l.national_code
                    ),
                ));
            }
        }
        if !(0..=100_000_000).contains(&l.quantity) {
            return Err(RpcError::invalid(
                format!("lines[{i}].quantity"),
                "quantity must be 0 to 100000000",
            ));
        }
        if !seen.insert(l.national_code.clone()) {
            return Err(RpcError::invalid(
                format!("lines[{i}].national_code"),
                format!("{} appears twice", l.national_code),
            ));
        }
    }
    Ok(())
}

pub async fn volume_report_submit(
    svc: Shared,
    ctx: Context,
    req: SubmitVolumeReport,
) -> R<VolumeReportView> {
    let a = actor(&ctx)?;
    if a.org_kind != OrgKind::Hospital {
        return Err(RpcError::forbidden("only hospitals report volumes"));
    }
    if req.hospital.is_some_and(|h| h != a.org) {
        return Err(
            RpcError::forbidden("a hospital reports only its own volumes").with_field("hospital"),
        );
    }
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    let p = store::lock_period(&mut tx, req.period)
        .await?
        .ok_or_else(|| RpcError::invalid("period", "period does not exist"))?;
    if !p.window_open(now) {
        return Err(RpcError::conflict(
            "window_closed",
            "the volume-report window of this period is not open",
        ));
    }
    let items = published_map(&mut tx, req.period).await?;
    check_group_lines(&req.lines, &req.product_group, &items)?;
    store::get_org(&mut tx, a.org)
        .await?
        .ok_or_else(|| RpcError::forbidden("your organisation is not in the directory"))?;
    store::upsert_report(
        &mut tx,
        req.period,
        a.org,
        &req.product_group,
        &req.lines,
        now,
    )
    .await?;
    let v = store::get_report(&mut tx, req.period, a.org, &req.product_group)
        .await?
        .ok_or_else(|| RpcError::internal("report vanished"))?;
    tx.commit().await?;
    Ok(v)
}

pub async fn volume_report_list(
    svc: Shared,
    ctx: Context,
    req: ListVolumeReports,
) -> R<Page<VolumeReportView>> {
    let a = actor(&ctx)?;
    let w = Window::new(req.page, req.page_size)?;
    let scope = match a.org_kind {
        OrgKind::Manufacturer | OrgKind::Distributor | OrgKind::Integrator => Scope::none(),
        _ => scope_of(a),
    };
    let mut conn = svc.pool.acquire().await?;
    let (items, total) = store::list_reports(
        &mut conn,
        req.period,
        req.hospital,
        req.region,
        &scope,
        w.limit(),
        w.offset(),
    )
    .await?;
    Ok(w.page(items, total))
}

pub async fn agreed_volume_set(
    svc: Shared,
    ctx: Context,
    req: SetAgreedVolume,
) -> R<AgreedVolumeView> {
    let a = actor(&ctx)?;
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    let p = store::lock_period(&mut tx, req.period)
        .await?
        .ok_or_else(|| RpcError::invalid("period", "period does not exist"))?;
    let hospital = match store::get_org(&mut tx, req.hospital).await? {
        Some(h) if h.record.kind == OrgKind::Hospital => h,
        _ => {
            return Err(RpcError::invalid(
                "hospital",
                format!("{} is not a registered hospital", req.hospital),
            ));
        }
    };
    if !(is_operator(a)
        || (a.org_kind == OrgKind::Bureau && a.jurisdiction_contains(&hospital.record.region)))
    {
        return Err(RpcError::forbidden(
            "only a bureau whose jurisdiction contains the hospital sets its agreed volume",
        ));
    }
    let items = published_map(&mut tx, req.period).await?;
    let report = store::get_report(&mut tx, req.period, req.hospital, &req.product_group).await?;
    let lines = match (&req.lines, &report) {
        (Some(l), _) => l.clone(),
        (None, Some(r)) => r.lines.clone(),
        (None, None) => {
            return Err(RpcError::invalid(
                "lines",
                "the hospital has no volume report for this group; give the lines",
            ));
        }
    };
    check_group_lines(&lines, &req.product_group, &items)?;
    let differs = match &report {
        Some(r) => {
            let a: BTreeMap<_, _> = r
                .lines
                .iter()
                .map(|l| (&l.national_code, l.quantity))
                .collect();
            let b: BTreeMap<_, _> = lines
                .iter()
                .map(|l| (&l.national_code, l.quantity))
                .collect();
            a != b
        }
        None => true,
    };
    let reason = req
        .reason
        .as_ref()
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    if differs && reason.is_none() {
        return Err(RpcError::invalid(
            "reason",
            "an agreed volume that differs from the hospital's report needs a reason",
        ));
    }
    let mut out_lines = Vec::new();
    for l in &lines {
        let it = &items[&l.national_code];
        let amount = it
            .winning_price_fen
            .mul_quantity(l.quantity)
            .ok_or_else(|| RpcError::invalid("lines", "amount overflows"))?;
        out_lines.push(AgreedVolumeLine {
            national_code: l.national_code.clone(),
            manufacturer: it.manufacturer,
            quantity: l.quantity,
            unit_price_fen: it.winning_price_fen,
            amount_fen: amount,
        });
    }
    let amount = Money::checked_sum(out_lines.iter().map(|l| l.amount_fen))
        .ok_or_else(|| RpcError::invalid("lines", "amount overflows"))?;
    let (existing, _) = store::list_agreed(
        &mut tx,
        req.period,
        Some(req.hospital),
        Some(&req.product_group),
        None,
        &Scope::all(),
        1,
        0,
    )
    .await?;
    let view = AgreedVolumeView {
        period: req.period,
        hospital: req.hospital,
        hospital_name: hospital.record.name.clone(),
        hospital_region: hospital.record.region,
        product_group: req.product_group.clone(),
        quantity: out_lines.iter().map(|l| l.quantity).sum(),
        amount_fen: amount,
        lines: out_lines,
        revision: existing.first().map(|e| e.revision + 1).unwrap_or(1),
        reason: reason.clone(),
        set_at: now,
    };
    store::upsert_agreed(&mut tx, &view).await?;
    svc.outbox
        .append(
            &mut tx,
            &ctx,
            &AgreedVolumeSet {
                period: p.id,
                project: p.project,
                hospital: view.hospital,
                hospital_region: view.hospital_region,
                product_group: view.product_group.clone(),
                lines: view.lines.clone(),
                quantity: view.quantity,
                amount_fen: view.amount_fen,
                revision: view.revision,
                reason,
                set_at: now,
            },
        )
        .await?;
    tx.commit().await?;
    Ok(view)
}

pub async fn agreed_volume_list(
    svc: Shared,
    ctx: Context,
    req: ListAgreedVolumes,
) -> R<Page<AgreedVolumeView>> {
    let a = actor(&ctx)?;
    let w = Window::new(req.page, req.page_size)?;
    let mut conn = svc.pool.acquire().await?;
    let (items, total) = store::list_agreed(
        &mut conn,
        req.period,
        req.hospital,
        None,
        req.region,
        &scope_of(a),
        w.limit(),
        w.offset(),
    )
    .await?;
    Ok(w.page(items, total))
}

// ---------------------------------------------------------------------------
// Tripartite agreements
// ---------------------------------------------------------------------------

async fn enterprise(
    conn: &mut PgConnection,
    id: OrgId,
    field: &str,
    distributor: bool,
) -> R<OrgView> {
    match store::get_org(conn, id).await? {
        Some(o) if distributor && o.record.is_distributor && o.record.active => Ok(o),
        Some(o) if !distributor && o.record.is_manufacturer && o.record.active => Ok(o),
        _ => Err(RpcError::invalid(
            field,
            format!(
                "{id} is not a registered, active {}",
                if distributor {
                    "distributor"
                } else {
                    "manufacturer"
                }
            ),
        )),
    }
}

fn agreement_lines(
    lines: &[QuantityLine],
    manufacturer: OrgId,
    items: &BTreeMap<NationalCode, SupplyItem>,
) -> R<(Vec<AgreementLine>, Money)> {
    if lines.is_empty() {
        return Err(RpcError::invalid(
            "lines",
            "an agreement needs at least one line",
        ));
    }
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, l) in lines.iter().enumerate() {
        let it = items.get(&l.national_code).ok_or_else(|| {
            RpcError::invalid(
                format!("lines[{i}].national_code"),
                format!(
                    "{} is not on the period's published supply list",
                    l.national_code
                ),
            )
        })?;
        if it.manufacturer != manufacturer {
            return Err(RpcError::invalid(
                format!("lines[{i}].national_code"),
                format!(
                    "{} is not a product of the agreement's manufacturer",
                    l.national_code
                ),
            ));
        }
        if !seen.insert(&l.national_code) {
            return Err(RpcError::invalid(
                format!("lines[{i}].national_code"),
                format!("{} appears twice", l.national_code),
            ));
        }
        if !(1..=100_000_000).contains(&l.quantity) {
            return Err(RpcError::invalid(
                format!("lines[{i}].quantity"),
                "quantity must be 1 to 100000000",
            ));
        }
        out.push(AgreementLine {
            national_code: l.national_code.clone(),
            product_group: it.product_group.clone(),
            quantity: l.quantity,
            unit_price_fen: it.winning_price_fen,
            amount_fen: it
                .winning_price_fen
                .mul_quantity(l.quantity)
                .ok_or_else(|| RpcError::invalid("lines", "amount overflows"))?,
        });
    }
    let total = Money::checked_sum(out.iter().map(|l| l.amount_fen))
        .ok_or_else(|| RpcError::invalid("lines", "amount overflows"))?;
    Ok((out, total))
}

fn check_distributors(d: &[OrgId]) -> R<()> {
    if d.is_empty() {
        return Err(RpcError::invalid(
            "distributors",
            "name at least one distributor",
        ));
    }
    let set: BTreeSet<_> = d.iter().collect();
    if set.len() != d.len() {
        return Err(RpcError::invalid(
            "distributors",
            "a distributor is named twice",
        ));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn state_event(
    conn: &mut PgConnection,
    outbox: &Outbox,
    ctx: &Context,
    a: &AgreementRow,
    project: ProjectId,
    region: RegionCode,
    from: Option<AgreementState>,
    reason: Option<String>,
) -> R<()> {
    outbox
        .append(
            conn,
            ctx,
            &AgreementStateChanged {
                agreement: a.id,
                version: a.version,
                period: a.period,
                project,
                hospital: a.hospital,
                hospital_region: region,
                manufacturer: a.manufacturer,
                distributors: a.distributors.iter().map(|d| d.distributor).collect(),
                from,
                state: a.state,
                reason,
                lines: a.lines.clone(),
                amount_fen: a.amount_fen,
                amends_version: a.amends_version,
                changed_at: a.updated_at,
            },
        )
        .await?;
    Ok(())
}

async fn view_of(conn: &mut PgConnection, a: &AgreementRow) -> R<AgreementView> {
    let p = store::get_period(conn, a.period)
        .await?
        .ok_or_else(|| RpcError::internal("period"))?;
    let h = store::get_org(conn, a.hospital)
        .await?
        .ok_or_else(|| RpcError::internal("hospital"))?;
    let m = store::get_org(conn, a.manufacturer)
        .await?
        .ok_or_else(|| RpcError::internal("manufacturer"))?;
    let latest = store::latest_version(conn, a.id).await?;
    Ok(store::agreement_view(
        a,
        p.project,
        h.record.name,
        h.record.region,
        m.record.name,
        latest,
    ))
}

pub async fn create_agreement_in(
    conn: &mut PgConnection,
    outbox: &Outbox,
    ctx: &Context,
    a: &Actor,
    req: &CreateAgreement,
    now: DateTime<Utc>,
) -> R<AgreementRow> {
    let p = period_or_404(conn, req.period, "period").await?;
    let hospital = match store::get_org(conn, req.hospital).await? {
        Some(h) if h.record.kind == OrgKind::Hospital => h,
        _ => {
            return Err(RpcError::invalid(
                "hospital",
                format!("{} is not a registered hospital", req.hospital),
            ));
        }
    };
    let allowed = is_operator(a)
        || (a.org_kind == OrgKind::Hospital && a.org == req.hospital)
        || (a.org_kind == OrgKind::Bureau && a.jurisdiction_contains(&hospital.record.region));
    if !allowed {
        return Err(RpcError::forbidden(
            "an agreement is drafted by the hospital itself or a bureau whose jurisdiction contains it",
        ));
    }
    enterprise(conn, req.manufacturer, "manufacturer", false).await?;
    check_distributors(&req.distributors)?;
    for (i, d) in req.distributors.iter().enumerate() {
        enterprise(conn, *d, &format!("distributors[{i}]"), true).await?;
    }
    if let Some(existing) =
        store::live_agreement_between(conn, req.period, req.hospital, req.manufacturer).await?
    {
        return Err(RpcError::conflict(
            "agreement_exists",
            format!(
                "agreement {existing} between this hospital and manufacturer is live in this period; amend it instead"
            ),
        ));
    }
    let items = published_map(conn, req.period).await?;
    let lines = match &req.lines {
        Some(l) => l.clone(),
        None => store::agreed_lines_for(conn, req.period, req.hospital, req.manufacturer)
            .await?
            .into_iter()
            .filter(|(_, _, q)| *q > 0)
            .map(|(national_code, _, quantity)| QuantityLine {
                national_code,
                quantity,
            })
            .collect(),
    };
    if lines.is_empty() {
        return Err(RpcError::invalid(
            "lines",
            "the hospital has no agreed volume for this manufacturer's products; set agreed volumes or give lines",
        ));
    }
    let (lines, amount) = agreement_lines(&lines, req.manufacturer, &items)?;
    let row = AgreementRow {
        id: AgreementId::new(),
        version: 1,
        period: req.period,
        hospital: req.hospital,
        manufacturer: req.manufacturer,
        state: AgreementState::Draft,
        lines,
        amount_fen: amount,
        amends_version: None,
        amendment_reason: None,
        hospital_confirmed_at: None,
        manufacturer_confirmed_at: None,
        effective_at: None,
        rejected_reason: None,
        rejected_by: None,
        paper: None,
        created_at: now,
        updated_at: now,
        distributors: req
            .distributors
            .iter()
            .map(|d| DistributorConfirmation {
                distributor: *d,
                confirmed_at: None,
            })
            .collect(),
    };
    store::insert_agreement(conn, &row).await?;
    state_event(
        conn,
        outbox,
        ctx,
        &row,
        p.project,
        hospital.record.region,
        None,
        None,
    )
    .await?;
    Ok(row)
}

pub async fn agreement_create(svc: Shared, ctx: Context, req: CreateAgreement) -> R<AgreementView> {
    let a = actor(&ctx)?.clone();
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    let row = create_agreement_in(&mut tx, &svc.outbox, &ctx, &a, &req, now).await?;
    let v = view_of(&mut tx, &row).await?;
    tx.commit().await?;
    Ok(v)
}

/// The version `version`, locked, which must be the latest.
async fn latest_locked(conn: &mut PgConnection, id: AgreementId, version: i32) -> R<AgreementRow> {
    let row = store::get_agreement(conn, id, Some(version), true)
        .await?
        .ok_or_else(|| {
            RpcError::not_found(format!("agreement {id} version {version} does not exist"))
        })?;
    Ok(row)
}

fn party_of(a: &Actor, row: &AgreementRow) -> Option<Party> {
    if a.org == row.hospital {
        Some(Party::Hospital)
    } else if a.org == row.manufacturer {
        Some(Party::Manufacturer)
    } else if row.distributors.iter().any(|d| d.distributor == a.org) {
        Some(Party::Distributor(a.org))
    } else {
        None
    }
}

pub async fn confirm_in(
    conn: &mut PgConnection,
    outbox: &Outbox,
    ctx: &Context,
    a: &Actor,
    req: &ConfirmAgreement,
    now: DateTime<Utc>,
    settings: &Settings,
) -> R<AgreementRow> {
    let mut row = latest_locked(conn, req.agreement, req.version).await?;
    let party = party_of(a, &row).ok_or_else(|| {
        RpcError::forbidden(
            "only the hospital, the manufacturer or a named distributor confirms an agreement",
        )
    })?;
    let pending: Vec<OrgId> = row
        .distributors
        .iter()
        .filter(|d| d.confirmed_at.is_none())
        .map(|d| d.distributor)
        .collect();
    let step = domain::confirm(row.state, party, &pending)
        .map_err(|e| RpcError::conflict("invalid_transition", e.0))?;
    let p = store::get_period(conn, row.period)
        .await?
        .ok_or_else(|| RpcError::internal("period"))?;
    let region = store::get_org(conn, row.hospital)
        .await?
        .map(|h| h.record.region)
        .unwrap_or(RegionCode::NATIONAL);
    if let Party::Distributor(d) = party
        && settings.require_distribution_relation
        && !store::has_active_relation(
            conn,
            row.hospital,
            row.manufacturer,
            d,
            now.max(p.starts_at),
        )
        .await?
    {
        return Err(RpcError::conflict(
            "no_distribution_relation",
            "the distributor holds no active distribution relation with this hospital for the manufacturer's products",
        ));
    }
    let from = row.state;
    row.updated_at = now;
    match step {
        Confirmation::Moved(to) => {
            match to {
                AgreementState::HospitalConfirmed => row.hospital_confirmed_at = Some(now),
                AgreementState::ManufacturerConfirmed => row.manufacturer_confirmed_at = Some(now),
                _ => {}
            }
            row.state = to;
            store::save_agreement(conn, &row).await?;
            state_event(conn, outbox, ctx, &row, p.project, region, Some(from), None).await?;
        }
        Confirmation::DistributorRecorded => {
            if let Some(d) = row.distributors.iter_mut().find(|d| d.distributor == a.org) {
                d.confirmed_at = Some(now);
            }
            store::save_agreement(conn, &row).await?;
        }
        Confirmation::AllConfirmed => {
            if let Some(d) = row.distributors.iter_mut().find(|d| d.distributor == a.org) {
                d.confirmed_at = Some(now);
            }
            row.state = AgreementState::DistributorConfirmed;
            store::save_agreement(conn, &row).await?;
            state_event(conn, outbox, ctx, &row, p.project, region, Some(from), None).await?;
            // Effective: an amendment supersedes the version it amends.
            if let Some(prev_v) = row.amends_version
                && let Some(mut prev) =
                    store::get_agreement(conn, row.id, Some(prev_v), false).await?
                && prev.state == AgreementState::Effective
            {
                prev.state = AgreementState::Superseded;
                prev.updated_at = now;
                store::save_agreement(conn, &prev).await?;
                state_event(
                    conn,
                    outbox,
                    ctx,
                    &prev,
                    p.project,
                    region,
                    Some(AgreementState::Effective),
                    Some(format!("superseded by version {}", row.version)),
                )
                .await?;
            }
            row.state = AgreementState::Effective;
            row.effective_at = Some(now);
            store::save_agreement(conn, &row).await?;
            state_event(
                conn,
                outbox,
                ctx,
                &row,
                p.project,
                region,
                Some(AgreementState::DistributorConfirmed),
                None,
            )
            .await?;
        }
    }
    Ok(row)
}

pub async fn agreement_confirm(
    svc: Shared,
    ctx: Context,
    req: ConfirmAgreement,
) -> R<AgreementView> {
    let a = actor(&ctx)?.clone();
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    let row = confirm_in(&mut tx, &svc.outbox, &ctx, &a, &req, now, &svc.settings).await?;
    let v = view_of(&mut tx, &row).await?;
    tx.commit().await?;
    Ok(v)
}

pub async fn agreement_reject(svc: Shared, ctx: Context, req: RejectAgreement) -> R<AgreementView> {
    let a = actor(&ctx)?.clone();
    let reason = req.reason.trim();
    if reason.is_empty() {
        return Err(RpcError::invalid("reason", "a rejection needs a reason"));
    }
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    let mut row = latest_locked(&mut tx, req.agreement, req.version).await?;
    party_of(&a, &row)
        .ok_or_else(|| RpcError::forbidden("only a party to the agreement may reject it"))?;
    domain::reject(row.state).map_err(|e| RpcError::conflict("invalid_transition", e.0))?;
    let from = row.state;
    row.state = AgreementState::Rejected;
    row.rejected_reason = Some(reason.to_owned());
    row.rejected_by = Some(a.org);
    row.updated_at = now;
    store::save_agreement(&mut tx, &row).await?;
    let p = store::get_period(&mut tx, row.period)
        .await?
        .ok_or_else(|| RpcError::internal("period"))?;
    let region = store::get_org(&mut tx, row.hospital)
        .await?
        .map(|h| h.record.region)
        .unwrap_or(RegionCode::NATIONAL);
    state_event(
        &mut tx,
        &svc.outbox,
        &ctx,
        &row,
        p.project,
        region,
        Some(from),
        Some(reason.to_owned()),
    )
    .await?;
    let v = view_of(&mut tx, &row).await?;
    tx.commit().await?;
    Ok(v)
}

pub async fn agreement_amend(svc: Shared, ctx: Context, req: AmendAgreement) -> R<AgreementView> {
    let a = actor(&ctx)?.clone();
    let reason = req.reason.trim().to_owned();
    if reason.is_empty() {
        return Err(RpcError::invalid("reason", "an amendment needs a reason"));
    }
    if reason.chars().count() > 1000 {
        return Err(RpcError::invalid(
            "reason",
            "a reason is at most 1000 characters",
        ));
    }
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    let cur = latest_locked(&mut tx, req.agreement, req.version).await?;
    let latest = store::latest_version(&mut tx, cur.id).await?;
    if latest != cur.version {
        return Err(RpcError::conflict(
            "not_latest_version",
            format!("version {latest} exists; amend the latest version"),
        )
        .with_field("version"));
    }
    let hospital = store::get_org(&mut tx, cur.hospital)
        .await?
        .ok_or_else(|| RpcError::internal("hospital"))?;
    let allowed = is_operator(&a)
        || matches!(
            party_of(&a, &cur),
            Some(Party::Hospital | Party::Manufacturer)
        )
        || (a.org_kind == OrgKind::Bureau && a.jurisdiction_contains(&hospital.record.region));
    if !allowed {
        return Err(RpcError::forbidden(
            "an amendment is requested by the hospital, the manufacturer or the hospital's bureau",
        ));
    }
    domain::amend(cur.state).map_err(|e| RpcError::conflict("invalid_transition", e.0))?;
    let distributors = req
        .distributors
        .clone()
        .unwrap_or_else(|| cur.distributors.iter().map(|d| d.distributor).collect());
    check_distributors(&distributors)?;
    for (i, d) in distributors.iter().enumerate() {
        enterprise(&mut tx, *d, &format!("distributors[{i}]"), true).await?;
    }
    let items = published_map(&mut tx, cur.period).await?;
    let quantity_lines = req.lines.clone().unwrap_or_else(|| {
        cur.lines
            .iter()
            .map(|l| QuantityLine {
                national_code: l.national_code.clone(),
                quantity: l.quantity,
            })
            .collect()
    });
    let (lines, amount) = agreement_lines(&quantity_lines, cur.manufacturer, &items)?;
    let row = AgreementRow {
        version: cur.version + 1,
        state: AgreementState::Draft,
        lines,
        amount_fen: amount,
        amends_version: Some(cur.version),
        amendment_reason: Some(reason.clone()),
        hospital_confirmed_at: None,
        manufacturer_confirmed_at: None,
        effective_at: None,
        rejected_reason: None,
        rejected_by: None,
        paper: None,
        created_at: now,
        updated_at: now,
        distributors: distributors
            .iter()
            .map(|d| DistributorConfirmation {
                distributor: *d,
                confirmed_at: None,
            })
            .collect(),
        ..cur.clone()
    };
    store::insert_agreement(&mut tx, &row).await?;
    let p = store::get_period(&mut tx, row.period)
        .await?
        .ok_or_else(|| RpcError::internal("period"))?;
    state_event(
        &mut tx,
        &svc.outbox,
        &ctx,
        &row,
        p.project,
        hospital.record.region,
        None,
        Some(reason),
    )
    .await?;
    let v = view_of(&mut tx, &row).await?;
    tx.commit().await?;
    Ok(v)
}

pub async fn agreement_paper_sign(
    svc: Shared,
    ctx: Context,
    req: RecordPaperSigning,
) -> R<AgreementView> {
    let a = actor(&ctx)?.clone();
    let sha = domain::normalise_sha256(&req.document_sha256)
        .map_err(|e| RpcError::invalid("document_sha256", e))?;
    let now = svc.clock.now();
    if req.signed_at > now {
        return Err(RpcError::invalid(
            "signed_at",
            "signed_at must not be in the future",
        ));
    }
    let mut tx = begin(&svc).await?;
    let mut row = latest_locked(&mut tx, req.agreement, req.version).await?;
    let hospital = store::get_org(&mut tx, row.hospital)
        .await?
        .ok_or_else(|| RpcError::internal("hospital"))?;
    let allowed = is_operator(&a)
        || a.org == row.hospital
        || (a.org_kind == OrgKind::Bureau && a.jurisdiction_contains(&hospital.record.region));
    if !allowed {
        return Err(RpcError::forbidden(
            "the hospital or its bureau records the paper signing",
        ));
    }
    if matches!(
        row.state,
        AgreementState::Rejected | AgreementState::Superseded
    ) {
        return Err(RpcError::conflict(
            "invalid_transition",
            format!("a {} version cannot be signed on paper", row.state.as_str()),
        ));
    }
    if row.paper.is_some() {
        return Err(RpcError::conflict(
            "already_signed",
            "the paper signing of this version is recorded",
        ));
    }
    let p = store::get_period(&mut tx, row.period)
        .await?
        .ok_or_else(|| RpcError::internal("period"))?;
    let late = p.paper_deadline.is_some_and(|d| req.signed_at >= d);
    row.paper = Some(PaperSigning {
        signed_at: req.signed_at,
        document_sha256: sha.clone(),
        late,
        recorded_at: now,
    });
    row.updated_at = now;
    store::save_agreement(&mut tx, &row).await?;
    svc.outbox
        .append(
            &mut tx,
            &ctx,
            &AgreementPaperSigned {
                agreement: row.id,
                version: row.version,
                period: row.period,
                hospital: row.hospital,
                hospital_region: hospital.record.region,
                signed_at: req.signed_at,
                document_sha256: sha,
                late,
                recorded_at: now,
            },
        )
        .await?;
    let v = view_of(&mut tx, &row).await?;
    tx.commit().await?;
    Ok(v)
}

pub async fn agreement_get(svc: Shared, ctx: Context, req: GetAgreement) -> R<AgreementView> {
    let a = actor(&ctx)?;
    let mut conn = svc.pool.acquire().await?;
    let row = store::get_agreement(&mut conn, req.agreement, req.version, false).await?;
    let not_found = || {
        RpcError::not_found(format!(
            "agreement {} does not exist or is not visible to you",
            req.agreement
        ))
    };
    let row = row.ok_or_else(not_found)?;
    let v = view_of(&mut conn, &row).await?;
    let visible = is_operator(a)
        || party_of(a, &row).is_some()
        || (a.org_kind == OrgKind::Bureau && a.jurisdiction_contains(&v.hospital_region));
    if !visible {
        return Err(not_found());
    }
    Ok(v)
}

pub async fn agreement_list(
    svc: Shared,
    ctx: Context,
    req: ListAgreements,
) -> R<Page<AgreementView>> {
    let a = actor(&ctx)?;
    let w = Window::new(req.page, req.page_size)?;
    let mut conn = svc.pool.acquire().await?;
    let (rows, total) = store::list_agreements(
        &mut conn,
        &store::AgreementFilter {
            period: req.period,
            hospital: req.hospital,
            region: req.region,
            state: req.state,
        },
        &scope_of(a),
        w.limit(),
        w.offset(),
    )
    .await?;
    let mut projects = HashMap::new();
    let mut items = Vec::new();
    for (row, hname, hregion, mname, latest) in rows {
        let project = match projects.get(&row.period) {
            Some(p) => *p,
            None => {
                let p = store::get_period(&mut conn, row.period)
                    .await?
                    .map(|p| p.project)
                    .ok_or_else(|| RpcError::internal("period"))?;
                projects.insert(row.period, p);
                p
            }
        };
        items.push(store::agreement_view(
            &row, project, hname, hregion, mname, latest,
        ));
    }
    Ok(w.page(items, total))
}

pub async fn agreement_paper_deadline(
    svc: Shared,
    ctx: Context,
    req: PaperDeadlineQuery,
) -> R<PaperDeadlineReport> {
    let a = actor(&ctx)?;
    if !(is_operator(a) || a.org_kind == OrgKind::Bureau) {
        return Err(RpcError::forbidden(
            "the paper-deadline list is for bureaus",
        ));
    }
    let now = svc.clock.now();
    let mut conn = svc.pool.acquire().await?;
    let p = period_or_404(&mut conn, req.period, "period").await?;
    let (rows, _) = store::list_agreements(
        &mut conn,
        &store::AgreementFilter {
            period: Some(req.period),
            hospital: None,
            region: req.region,
            state: None,
        },
        &scope_of(a),
        i64::MAX,
        0,
    )
    .await?;
    // The latest live version of each agreement counts.
    let mut latest: BTreeMap<AgreementId, (AgreementRow, String, RegionCode)> = BTreeMap::new();
    for (row, hname, hregion, _, latest_v) in rows {
        if row.version == latest_v {
            latest.insert(row.id, (row, hname, hregion));
        }
    }
    let unsigned: Vec<_> = latest
        .into_values()
        .filter(|(r, _, _)| {
            !matches!(
                r.state,
                AgreementState::Rejected | AgreementState::Superseded
            )
        })
        .filter(|(r, _, _)| r.paper.is_none())
        .collect();
    let past = p.paper_deadline.is_some_and(|d| now >= d);
    let overdue: Vec<UnsignedAgreement> = if past {
        unsigned
            .iter()
            .map(|(r, hname, hregion)| UnsignedAgreement {
                agreement: r.id,
                version: r.version,
                hospital: r.hospital,
                hospital_name: hname.clone(),
                hospital_region: *hregion,
                manufacturer: r.manufacturer,
                state: r.state,
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut by_region: BTreeMap<RegionCode, i64> = BTreeMap::new();
    for o in &overdue {
        *by_region.entry(o.hospital_region).or_default() += 1;
    }
    Ok(PaperDeadlineReport {
        period: p.id,
        deadline: p.paper_deadline,
        as_of: now,
        past_deadline: past,
        pending: if past { 0 } else { unsigned.len() as i64 },
        overdue,
        overdue_by_region: by_region
            .into_iter()
            .map(|(region, count)| RegionCount { region, count })
            .collect(),
    })
}

// ---------------------------------------------------------------------------
// Progress and flags
// ---------------------------------------------------------------------------

fn progress_row(
    f: &store::ProgressFact,
    p: &PeriodRow,
    as_of: DateTime<Utc>,
    settings: &Settings,
) -> ProgressRow {
    let (elapsed, total) = domain::elapsed_days(p.starts_at, p.ends_at, as_of);
    let class = domain::classify(f.agreed, f.accepted, elapsed, total);
    ProgressRow {
        hospital: f.hospital,
        hospital_name: f.hospital_name.clone(),
        hospital_region: f.hospital_region,
        national_code: f.national_code.clone(),
        product_group: f.product_group.clone(),
        manufacturer: f.manufacturer,
        agreed_quantity: f.agreed,
        accepted_quantity: f.accepted,
        accepted_amount_fen: f.accepted_amount,
        over_volume_quantity: (f.accepted - f.agreed).max(0),
        progress_bp: domain::progress_bp(f.agreed, f.accepted),
        class,
        last_accepted_at: f.last_accepted_at,
        sudden_stop: domain::is_sudden_stop(
            class,
            f.last_accepted_at,
            as_of,
            p.ends_at,
            settings.sudden_stop_days,
        ),
    }
}

fn as_of(now: DateTime<Utc>, requested: Option<DateTime<Utc>>) -> R<DateTime<Utc>> {
    match requested {
        Some(t) if t > now => Err(RpcError::invalid(
            "as_of",
            "as_of must not be in the future",
        )),
        Some(t) => Ok(t),
        None => Ok(now),
    }
}

pub async fn progress_query(svc: Shared, ctx: Context, req: QueryProgress) -> R<ProgressReport> {
    let a = actor(&ctx)?;
    let w = Window::new(req.page, req.page_size)?;
    let at = as_of(svc.clock.now(), req.as_of)?;
    let mut conn = svc.pool.acquire().await?;
    let p = period_or_404(&mut conn, req.period, "period").await?;
    let facts = store::progress_facts(
        &mut conn,
        req.period,
        req.hospital,
        req.region,
        req.national_code.as_ref(),
        &scope_of(a),
    )
    .await?;
    let rows: Vec<ProgressRow> = facts
        .iter()
        .map(|f| progress_row(f, &p, at, &svc.settings))
        .filter(|r| req.class.is_none_or(|c| r.class == c))
        .collect();
    let (elapsed, total) = domain::elapsed_days(p.starts_at, p.ends_at, at);
    Ok(ProgressReport {
        period: p.id,
        as_of: at,
        time_progress_bp: domain::time_progress_bp(elapsed, total),
        total: rows.len() as i64,
        items: rows
            .into_iter()
            .skip(w.offset() as usize)
            .take(w.limit() as usize)
            .collect(),
        page: req.page,
        page_size: req.page_size,
    })
}

pub async fn progress_monthly(
    svc: Shared,
    ctx: Context,
    req: QueryMonthlyBalance,
) -> R<MonthlyBalance> {
    let a = actor(&ctx)?;
    let hospital = match (a.org_kind, req.hospital) {
        (OrgKind::Hospital, None) => a.org,
        (_, Some(h)) => h,
        (_, None) => return Err(RpcError::invalid("hospital", "name the hospital")),
    };
    let mut conn = svc.pool.acquire().await?;
    let p = period_or_404(&mut conn, req.period, "period").await?;
    let facts = store::progress_facts(
        &mut conn,
        req.period,
        Some(hospital),
        None,
        Some(&req.national_code),
        &scope_of(a),
    )
    .await?;
    let agreed = facts.first().map(|f| f.agreed).unwrap_or(0);
    if facts.is_empty() && a.org != hospital && !is_operator(a) {
        // Not visible (or nothing there): the same answer, so scoping leaks nothing.
        return Err(RpcError::not_found(
            "no progress of this hospital and product is visible to you",
        ));
    }
    let by_month = store::monthly(&mut conn, req.period, hospital, &req.national_code).await?;
    let months = domain::months_of(p.first_day, p.last_day);
    let expected = domain::expected_per_month(agreed, months.len());
    Ok(MonthlyBalance {
        period: p.id,
        hospital,
        national_code: req.national_code.clone(),
        agreed_quantity: agreed,
        months: months
            .into_iter()
            .map(|m| MonthBalance {
                month: m,
                accepted_quantity: by_month.get(&m).copied().unwrap_or(0),
                expected_quantity: expected,
            })
            .collect(),
    })
}

pub async fn progress_snapshot(
    svc: Shared,
    ctx: Context,
    req: TakeProgressSnapshot,
) -> R<SnapshotTaken> {
    let a = actor(&ctx)?;
    if !(is_operator(a)
        || (a.org_kind == OrgKind::Bureau && a.region.level() <= RegionLevel::Province))
    {
        return Err(RpcError::forbidden(
            "snapshots are taken by operators, the scheduler or a province bureau",
        ));
    }
    let now = svc.clock.now();
    let mut tx = begin(&svc).await?;
    let p = period_or_404(&mut tx, req.period, "period").await?;
    let taken = snapshot_in(
        &mut tx,
        &svc.outbox,
        &ctx,
        &p,
        &scope_of(a),
        now,
        week_of(beijing_date(now)),
    )
    .await?;
    tx.commit().await?;
    Ok(taken)
}

/// The Monday of `day`'s week.
pub fn week_of(day: chrono::NaiveDate) -> chrono::NaiveDate {
    day - Duration::days(day.weekday().num_days_from_monday() as i64)
}

/// Emits the weekly progress snapshot of every hospital of the period in
/// `scope` that has not had one for `week_start` (so the RPC and the weekly
/// timer never emit a week twice), with figures as of `now`.
pub async fn snapshot_in(
    conn: &mut PgConnection,
    outbox: &Outbox,
    ctx: &Context,
    p: &PeriodRow,
    scope: &Scope,
    now: DateTime<Utc>,
    week_start: chrono::NaiveDate,
) -> R<SnapshotTaken> {
    let facts = store::progress_facts(conn, p.id, None, None, None, scope).await?;
    let items = published_map(conn, p.id).await?;
    let (elapsed, total) = domain::elapsed_days(p.starts_at, p.ends_at, now);
    let mut by_hospital: BTreeMap<OrgId, Vec<&store::ProgressFact>> = BTreeMap::new();
    for f in &facts {
        by_hospital.entry(f.hospital).or_default().push(f);
    }
    let mut n = 0;
    for (hospital, fs) in by_hospital {
        if !store::mark_snapshot(conn, p.id, hospital, week_start, now).await? {
            continue;
        }
        n += 1;
        let lines: Vec<ProgressLine> = fs
            .iter()
            .map(|f| ProgressLine {
                national_code: f.national_code.clone(),
                product_group: f.product_group.clone(),
                agreed_quantity: f.agreed,
                accepted_quantity: f.accepted,
                accepted_amount_fen: f.accepted_amount,
                progress_bp: domain::progress_bp(f.agreed, f.accepted),
                class: domain::classify(f.agreed, f.accepted, elapsed, total),
            })
            .collect();
        let agreed_amount = Money::checked_sum(fs.iter().map(|f| {
            items
                .get(&f.national_code)
                .and_then(|i| i.winning_price_fen.mul_quantity(f.agreed))
                .unwrap_or(Money::ZERO)
        }))
        .unwrap_or(Money::ZERO);
        let accepted_amount =
            Money::checked_sum(fs.iter().map(|f| f.accepted_amount)).unwrap_or(Money::ZERO);
        outbox
            .append(
                conn,
                ctx,
                &ProgressSnapshot {
                    period: p.id,
                    project: p.project,
                    hospital,
                    hospital_region: fs[0].hospital_region,
                    week_start,
                    as_of: now,
                    time_progress_bp: domain::time_progress_bp(elapsed, total),
                    lines,
                    agreed_amount_fen: agreed_amount,
                    accepted_amount_fen: accepted_amount,
                },
            )
            .await?;
    }
    Ok(SnapshotTaken {
        period: p.id,
        week_start,
        hospitals: n,
    })
}

pub async fn flag_list(svc: Shared, ctx: Context, req: ListFlags) -> R<FlagList> {
    let a = actor(&ctx)?;
    let now = svc.clock.now();
    let mut conn = svc.pool.acquire().await?;
    let p = period_or_404(&mut conn, req.period, "period").await?;
    let scope = scope_of(a);
    let facts = store::progress_facts(
        &mut conn,
        req.period,
        req.hospital,
        req.region,
        None,
        &scope,
    )
    .await?;
    let mut flags = Vec::new();
    let mut names: HashMap<OrgId, (String, RegionCode)> = HashMap::new();
    for f in &facts {
        names.insert(f.hospital, (f.hospital_name.clone(), f.hospital_region));
        let r = progress_row(f, &p, now, &svc.settings);
        let mut push = |kind: FlagKind, detail: String| {
            flags.push(FlagView {
                kind,
                hospital: f.hospital,
                hospital_name: f.hospital_name.clone(),
                hospital_region: f.hospital_region,
                product_group: Some(f.product_group.clone()),
                national_code: Some(f.national_code.clone()),
                detail,
            })
        };
        match r.class {
            ProgressClass::OverVolume => push(
                FlagKind::OverVolume,
                format!(
                    "accepted {} beyond the agreed {} (valid; supply continues at the winning price)",
                    r.over_volume_quantity, f.agreed
                ),
            ),
            ProgressClass::Slow => push(
                FlagKind::Slow,
                format!(
                    "accepted {} of {} agreed, below time progress",
                    f.accepted, f.agreed
                ),
            ),
            _ => {}
        }
        if r.sudden_stop {
            push(
                FlagKind::SuddenStop,
                format!(
                    "no acceptance for {} days after completion while the period runs",
                    svc.settings.sudden_stop_days
                ),
            );
        }
    }
    // Volume-report flags per hospital × product group.
    let reported = store::reported_totals(&mut conn, req.period).await?;
    let accepted = store::accepted_by_group(&mut conn, req.period).await?;
    let (elapsed, total) = domain::elapsed_days(p.starts_at, p.ends_at, now);
    for ((hospital, group), q) in &reported {
        if let Some((name, region)) = visible_hospital(
            &mut conn,
            a,
            &scope,
            *hospital,
            &mut names,
            req.hospital,
            req.region,
        )
        .await?
        {
            let acc = accepted
                .get(&(*hospital, group.clone()))
                .copied()
                .unwrap_or(0);
            if domain::reported_not_used(
                *q,
                acc,
                svc.settings.reported_not_used_share_bp,
                elapsed,
                total,
            ) {
                flags.push(FlagView {
                    kind: FlagKind::ReportedNotUsed,
                    hospital: *hospital,
                    hospital_name: name,
                    hospital_region: region,
                    product_group: Some(group.clone()),
                    national_code: None,
                    detail: format!(
                        "reported {q}, accepted {acc}: below {} of the report pro rata",
                        BasisPoints::new(svc.settings.reported_not_used_share_bp)
                            .unwrap_or(BasisPoints::ZERO)
                    ),
                });
            }
        }
    }
    let prev = if p.number > 1 {
        store::period_by_number(&mut conn, p.project, p.number - 1).await?
    } else {
        None
    };
    if let Some(prev) = prev {
        let before = store::accepted_by_group(&mut conn, prev.id).await?;
        for ((hospital, group), q) in &before {
            if *q <= 0
                || reported
                    .get(&(*hospital, group.clone()))
                    .copied()
                    .unwrap_or(0)
                    > 0
            {
                continue;
            }
            if let Some((name, region)) = visible_hospital(
                &mut conn,
                a,
                &scope,
                *hospital,
                &mut names,
                req.hospital,
                req.region,
            )
            .await?
            {
                flags.push(FlagView {
                    kind: FlagKind::UsedNotReported,
                    hospital: *hospital,
                    hospital_name: name,
                    hospital_region: region,
                    product_group: Some(group.clone()),
                    national_code: None,
                    detail: format!(
                        "accepted {q} in period {}, reported nothing for period {}",
                        prev.number, p.number
                    ),
                });
            }
        }
    }
    flags.retain(|f| req.kind.is_none_or(|k| f.kind == k));
    flags.sort_by(|x, y| {
        (x.hospital_region, &x.hospital_name, x.kind).cmp(&(
            y.hospital_region,
            &y.hospital_name,
            y.kind,
        ))
    });
    Ok(FlagList {
        period: p.id,
        as_of: now,
        flags,
    })
}

async fn visible_hospital(
    conn: &mut PgConnection,
    a: &Actor,
    scope: &Scope,
    hospital: OrgId,
    names: &mut HashMap<OrgId, (String, RegionCode)>,
    filter_hospital: Option<OrgId>,
    filter_region: Option<RegionCode>,
) -> R<Option<(String, RegionCode)>> {
    if filter_hospital.is_some_and(|h| h != hospital) {
        return Ok(None);
    }
    let (name, region) = match names.get(&hospital) {
        Some(x) => x.clone(),
        None => match store::get_org(conn, hospital).await? {
            Some(o) => (o.record.name, o.record.region),
            None => return Ok(None),
        },
    };
    if filter_region.is_some_and(|r| !r.contains(region)) {
        return Ok(None);
    }
    let ok = match scope.kind {
        "all" => true,
        "region" => a.jurisdiction_contains(&region),
        "hospital" => hospital == a.org,
        _ => false,
    };
    Ok(ok.then_some((name, region)))
}
