//! One transaction's worth of integrator messages. What they read (the
//! directory, periods, the facts of products, their orders and the queues
//! of waiting messages) is read once, the orders locked; each message then
//! checks its rules against that state in memory and, when it applies,
//! changes it there and stages its events. Nothing is written until
//! [`Unit::flush`], which writes everything in a few multi-row statements,
//! so a message that breaks a rule leaves nothing behind and a batch of
//! hundreds of messages costs about twenty round trips.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use vbp_bus::outbox::Staged;
use vbp_bus::timers::NewTimer;
use vbp_bus::{Context, HandlerError, Outbox};
use vbp_contracts::Event;
use vbp_contracts::orders::{OrderId, OrderView, ReceiptAccepted, ShipmentId};
use vbp_kernel::OrgId;

use crate::store::bulk::{self, OrderChange};
use crate::store::ingest::{self as queue, Outcome, Pending};
use crate::store::{self, FactAsk, LineFacts, OrgRow, PeriodRow};
use crate::timers::PAYMENT_DUE_TIMER;

use super::pending::{self, PENDING_TIMER};

/// An order as the batch sees it.
pub struct Entry {
    pub view: OrderView,
    /// Placed in this batch: inserted as it stands at the end.
    new: bool,
    /// Changed in this batch.
    touched: bool,
    pub responded_at: Option<DateTime<Utc>>,
}

impl Entry {
    fn change(&self) -> OrderChange<'_> {
        OrderChange {
            view: &self.view,
            responded_at: self.responded_at,
        }
    }
}

/// A waiting message, from the table or parked in this batch.
#[derive(Clone)]
struct Queued {
    p: Pending,
    in_db: bool,
    rewaited: bool,
}

type Key = (String, String);

#[derive(Default)]
pub struct Unit {
    orgs: HashMap<OrgId, Option<OrgRow>>,
    periods: Option<Vec<PeriodRow>>,
    facts: HashMap<FactAsk, LineFacts>,
    /// Orders by (integrator, external id); `None` when known not to exist.
    orders: HashMap<(OrgId, String), Option<usize>>,
    entries: Vec<Entry>,
    new_shipments: HashSet<ShipmentId>,
    received: Vec<(ShipmentId, DateTime<Utc>)>,
    acceptances: Vec<ReceiptAccepted>,
    payment_timers: Vec<NewTimer>,
    events: Vec<Staged>,
    outcomes: BTreeMap<Key, Outcome>,
    /// Waiting messages per (integrator, order external id), by stage then
    /// arrival; present once read.
    queues: HashMap<Key, Vec<Queued>>,
    unparked: Vec<Key>,
    /// Expiry timers to set (`Some`) or cancel (`None`).
    pending_timers: BTreeMap<String, Option<NewTimer>>,
    /// Whether any product is flagged short anywhere; read once.
    any_shortage: Option<bool>,
}

pub fn timer_key(integrator: &str, external_id: &str) -> String {
    format!("{integrator}/{external_id}")
}

impl Unit {
    /// Whether any shortage flag is in force at `now`: when none is (the
    /// usual case) a shipping note that answers its order needs no priority
    /// check at all.
    pub async fn any_shortage(
        &mut self,
        conn: &mut PgConnection,
        now: DateTime<Utc>,
    ) -> Result<bool, sqlx::Error> {
        if let Some(known) = self.any_shortage {
            return Ok(known);
        }
        let any = crate::store::any_shortage_at(conn, now).await?;
        self.any_shortage = Some(any);
        Ok(any)
    }

    /// Reads in advance what a batch's messages will ask for: directory
    /// entries, the facts of the products of orders being placed, the
    /// orders the other messages name, and the queues of all their orders.
    pub async fn prefetch(
        &mut self,
        conn: &mut PgConnection,
        orgs: &[OrgId],
        placing: &[(OrgId, OrgId, DateTime<Utc>, Vec<String>)],
        orders: &[(OrgId, &str)],
        queues: &[(&str, &str)],
    ) -> Result<(), sqlx::Error> {
        let mut ids: Vec<OrgId> = orgs.to_vec();
        for (h, d, _, _) in placing {
            ids.extend([*h, *d]);
        }
        ids.sort();
        ids.dedup();
        self.load_orgs(conn, &ids).await?;
        if !placing.is_empty() {
            let periods = self.periods(conn).await?.to_vec();
            let mut asks = Vec::new();
            for (h, d, at, codes) in placing {
                let (Some(Some(hospital)), Some(period)) =
                    (self.orgs.get(h), store::period_in(&periods, *at))
                else {
                    continue;
                };
                for code in codes {
                    asks.push(FactAsk {
                        period: period.id,
                        hospital: *h,
                        region: hospital.region,
                        distributor: *d,
                        code: code.clone(),
                        at: *at,
                    });
                }
            }
            self.facts
                .extend(store::line_facts_many(conn, &asks).await?);
        }
        self.load_orders(conn, orders).await?;
        let mut keys: Vec<(&str, &str)> = queues
            .iter()
            .copied()
            .filter(|(i, o)| !self.queues.contains_key(&(i.to_string(), o.to_string())))
            .collect();
        keys.sort();
        keys.dedup();
        self.load_queues(conn, &keys).await
    }

    async fn load_orgs(
        &mut self,
        conn: &mut PgConnection,
        ids: &[OrgId],
    ) -> Result<(), sqlx::Error> {
        let missing: Vec<OrgId> = ids
            .iter()
            .copied()
            .filter(|id| !self.orgs.contains_key(id))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut found = store::get_orgs(conn, &missing).await?;
        for id in missing {
            self.orgs.insert(id, found.remove(&id));
        }
        Ok(())
    }

    pub async fn org(
        &mut self,
        conn: &mut PgConnection,
        id: OrgId,
    ) -> Result<Option<OrgRow>, sqlx::Error> {
        self.load_orgs(conn, &[id]).await?;
        Ok(self.orgs.get(&id).cloned().flatten())
    }

    pub async fn periods(&mut self, conn: &mut PgConnection) -> Result<&[PeriodRow], sqlx::Error> {
        if self.periods.is_none() {
            self.periods = Some(store::listed_periods(conn).await?);
        }
        Ok(self.periods.as_deref().unwrap_or_default())
    }

    /// The facts of `asks`, read together for those not read yet.
    pub async fn facts(
        &mut self,
        conn: &mut PgConnection,
        asks: &[FactAsk],
    ) -> Result<HashMap<String, LineFacts>, sqlx::Error> {
        let missing: Vec<FactAsk> = asks
            .iter()
            .filter(|a| !self.facts.contains_key(a))
            .cloned()
            .collect();
        if !missing.is_empty() {
            self.facts
                .extend(store::line_facts_many(conn, &missing).await?);
        }
        Ok(asks
            .iter()
            .filter_map(|a| self.facts.get(a).map(|f| (a.code.clone(), f.clone())))
            .collect())
    }

    async fn load_orders(
        &mut self,
        conn: &mut PgConnection,
        keys: &[(OrgId, &str)],
    ) -> Result<(), sqlx::Error> {
        let missing: Vec<(OrgId, &str)> = keys
            .iter()
            .copied()
            .filter(|(i, e)| !self.orders.contains_key(&(*i, e.to_string())))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        for view in store::orders_by_external(conn, &missing).await? {
            let (Some(i), Some(e)) = (view.integrator, view.external_id.clone()) else {
                continue;
            };
            self.orders.insert((i, e), Some(self.entries.len()));
            self.entries.push(Entry {
                view,
                new: false,
                touched: false,
                responded_at: None,
            });
        }
        for (i, e) in missing {
            self.orders.entry((i, e.to_owned())).or_insert(None);
        }
        Ok(())
    }

    /// The order an integrator placed under `external_id`, locked.
    pub async fn order(
        &mut self,
        conn: &mut PgConnection,
        integrator: OrgId,
        external_id: &str,
    ) -> Result<Option<&mut Entry>, sqlx::Error> {
        self.load_orders(conn, &[(integrator, external_id)]).await?;
        Ok(
            match self.orders.get(&(integrator, external_id.to_owned())) {
                Some(Some(at)) => Some(&mut self.entries[*at]),
                _ => None,
            },
        )
    }

    /// A placed order, as its event left it.
    pub fn add_order(&mut self, integrator: OrgId, external_id: &str, view: OrderView) {
        self.orders.insert(
            (integrator, external_id.to_owned()),
            Some(self.entries.len()),
        );
        self.entries.push(Entry {
            view,
            new: true,
            touched: true,
            responded_at: None,
        });
    }

    /// Marks an order changed (after changing its view).
    pub fn touch(entry: &mut Entry) {
        entry.touched = true;
    }

    pub fn is_new(entry: &Entry) -> bool {
        entry.new
    }

    pub fn shipped(&mut self, shipment: ShipmentId) {
        self.new_shipments.insert(shipment);
    }

    pub fn shipment_received(&mut self, shipment: ShipmentId, at: DateTime<Utc>) {
        if !self.new_shipments.contains(&shipment) {
            self.received.push((shipment, at));
        }
    }

    /// An acceptance, and its payment deadline when there is money to pay.
    pub fn accepted(&mut self, ev: ReceiptAccepted, ctx: &Context) -> Result<(), HandlerError> {
        if ev.amount_fen.fen() > 0 {
            let due = ev.payment_due_at.unwrap_or(ev.accepted_at);
            self.payment_timers
                .push(crate::timers::payment_due_timer(ev.acceptance, due, ctx)?);
        }
        self.acceptances.push(ev);
        Ok(())
    }

    pub fn stage<E: Event>(
        &mut self,
        outbox: &Outbox,
        ctx: &Context,
        ev: &E,
    ) -> Result<(), HandlerError> {
        self.events.push(
            outbox
                .stage(ctx, ev)
                .map_err(|e| HandlerError::transient(e.to_string()))?,
        );
        Ok(())
    }

    pub fn push_staged(&mut self, ev: Staged) {
        self.events.push(ev);
    }

    pub fn outcome(&mut self, o: Outcome) {
        self.outcomes
            .insert((o.integrator.clone(), o.external_id.clone()), o);
    }

    async fn load_queues(
        &mut self,
        conn: &mut PgConnection,
        keys: &[(&str, &str)],
    ) -> Result<(), sqlx::Error> {
        if keys.is_empty() {
            return Ok(());
        }
        for (i, o) in keys {
            self.queues
                .insert((i.to_string(), o.to_string()), Vec::new());
        }
        for p in queue::queues_of(conn, keys).await? {
            self.queues
                .entry((p.integrator.clone(), p.order_external_id.clone()))
                .or_default()
                .push(Queued {
                    p,
                    in_db: true,
                    rewaited: false,
                });
        }
        Ok(())
    }

    async fn queue(
        &mut self,
        conn: &mut PgConnection,
        integrator: &str,
        order: &str,
    ) -> Result<&mut Vec<Queued>, sqlx::Error> {
        let key = (integrator.to_owned(), order.to_owned());
        if !self.queues.contains_key(&key) {
            self.load_queues(conn, &[(integrator, order)]).await?;
        }
        Ok(self.queues.entry(key).or_default())
    }

    /// Whether messages of the order of an earlier stage than `stage` wait.
    pub async fn earlier_waiting(
        &mut self,
        conn: &mut PgConnection,
        integrator: &str,
        order: &str,
        stage: i16,
    ) -> Result<bool, sqlx::Error> {
        Ok(self
            .queue(conn, integrator, order)
            .await?
            .iter()
            .any(|q| q.p.stage < stage))
    }

    /// The waiting messages of an order, by stage then arrival.
    pub async fn waiting(
        &mut self,
        conn: &mut PgConnection,
        integrator: &str,
        order: &str,
    ) -> Result<Vec<Pending>, sqlx::Error> {
        Ok(self
            .queue(conn, integrator, order)
            .await?
            .iter()
            .map(|q| q.p.clone())
            .collect())
    }

    pub async fn park(&mut self, conn: &mut PgConnection, p: Pending) -> Result<(), HandlerError> {
        let key = timer_key(&p.integrator, &p.external_id);
        let payload = serde_json::to_value(pending::Key {
            integrator: p.integrator.clone(),
            external_id: p.external_id.clone(),
        })
        .map_err(|e| HandlerError::permanent(e.to_string()))?;
        self.pending_timers.insert(
            key.clone(),
            Some(NewTimer {
                key,
                due_at: p.expires_at,
                correlation: Some(p.meta.correlation),
                payload,
            }),
        );
        self.outcome(Outcome {
            integrator: p.integrator.clone(),
            external_id: p.external_id.clone(),
            outcome: "pending",
            field: None,
            reason: None,
            at: p.parked_at,
        });
        let queue = self
            .queue(conn, &p.integrator, &p.order_external_id)
            .await?;
        let at = queue.partition_point(|q| q.p.stage <= p.stage);
        queue.insert(
            at,
            Queued {
                p,
                in_db: false,
                rewaited: false,
            },
        );
        Ok(())
    }

    /// Takes a message out of its order's queue.
    pub fn unpark(&mut self, p: &Pending) {
        let key = (p.integrator.clone(), p.order_external_id.clone());
        if let Some(queue) = self.queues.get_mut(&key)
            && let Some(at) = queue.iter().position(|q| q.p.external_id == p.external_id)
        {
            let q = queue.remove(at);
            if q.in_db {
                self.unparked
                    .push((q.p.integrator.clone(), q.p.external_id.clone()));
            }
        }
        self.pending_timers
            .insert(timer_key(&p.integrator, &p.external_id), None);
    }

    /// A waiting message now waits for something else.
    pub fn rewait(&mut self, p: &Pending, waits_for: &str, field: &str) {
        let key = (p.integrator.clone(), p.order_external_id.clone());
        if let Some(q) = self
            .queues
            .get_mut(&key)
            .and_then(|queue| queue.iter_mut().find(|q| q.p.external_id == p.external_id))
        {
            q.p.waits_for = waits_for.to_owned();
            q.p.waits_field = field.to_owned();
            q.rewaited = true;
        }
    }

    /// Writes everything the batch decided.
    pub async fn flush(
        self,
        conn: &mut PgConnection,
        outbox: &Outbox,
        now: DateTime<Utc>,
    ) -> Result<(), HandlerError> {
        let new: Vec<OrderChange<'_>> = self
            .entries
            .iter()
            .filter(|e| e.new)
            .map(Entry::change)
            .collect();
        let changed: Vec<OrderChange<'_>> = self
            .entries
            .iter()
            .filter(|e| e.touched && !e.new)
            .map(Entry::change)
            .collect();
        bulk::insert_orders(conn, &new, now).await?;
        bulk::update_orders(conn, &changed).await?;
        let shipments: Vec<(OrderId, &vbp_contracts::orders::ShipmentView)> = self
            .entries
            .iter()
            .filter(|e| e.touched)
            .flat_map(|e| {
                e.view
                    .shipments
                    .iter()
                    .filter(|s| self.new_shipments.contains(&s.shipment))
                    .map(move |s| (e.view.order, s))
            })
            .collect();
        bulk::insert_shipments(conn, &shipments).await?;
        bulk::mark_shipments_received(conn, &self.received).await?;
        let accepted: Vec<&ReceiptAccepted> = self.acceptances.iter().collect();
        bulk::insert_acceptances(conn, &accepted).await?;
        vbp_bus::timers::schedule_many(conn, PAYMENT_DUE_TIMER, &self.payment_timers).await?;

        let unparked: Vec<(&str, &str)> = self
            .unparked
            .iter()
            .map(|(i, e)| (i.as_str(), e.as_str()))
            .collect();
        queue::unpark_many(conn, &unparked).await?;
        let still: Vec<&Queued> = self.queues.values().flatten().collect();
        let parked: Vec<&Pending> = still.iter().filter(|q| !q.in_db).map(|q| &q.p).collect();
        queue::park_many(conn, &parked).await?;
        let rewaits: Vec<(&str, &str, &str, &str)> = still
            .iter()
            .filter(|q| q.in_db && q.rewaited)
            .map(|q| {
                (
                    q.p.integrator.as_str(),
                    q.p.external_id.as_str(),
                    q.p.waits_for.as_str(),
                    q.p.waits_field.as_str(),
                )
            })
            .collect();
        queue::rewait_many(conn, &rewaits).await?;
        let (set, cancel): (Vec<_>, Vec<_>) = self
            .pending_timers
            .into_iter()
            .partition(|(_, t)| t.is_some());
        let set: Vec<NewTimer> = set.into_iter().filter_map(|(_, t)| t).collect();
        let cancel: Vec<String> = cancel.into_iter().map(|(k, _)| k).collect();
        vbp_bus::timers::cancel_many(conn, PENDING_TIMER, &cancel).await?;
        vbp_bus::timers::schedule_many(conn, PENDING_TIMER, &set).await?;

        let outcomes: Vec<Outcome> = self.outcomes.into_values().collect();
        queue::set_outcomes(conn, &outcomes).await?;
        outbox.append_staged(conn, &self.events).await?;
        Ok(())
    }
}
