//! The walks that emit a page in sort order: by a leading `created_at`
//! (the driving postings) or an order (`updated_at`, `id`, `plan_id`), by
//! groups of a leading status/region sort, or by id alone; and the tie runs
//! that order equal sort values by the remaining keys.

use super::*;

impl Planner<'_> {
    /// Only the `id` tie-break is left. Inside the marker's place in every
    /// earlier key, the ids that follow the marker are those past its id.
    pub(super) fn emit_by_id(&mut self, filters: &[Posting]) -> Result<(), StoreError> {
        let tie = self.tie;
        let after = self.after.take().map(|(id, _)| id);
        let follows = |id: &str| {
            after
                .as_deref()
                .is_none_or(|m| directed(id.cmp(m), tie) == Ordering::Greater)
        };
        if filters.is_empty() {
            let prefix = self
                .store
                .list_prefix(&keys::order_list(self.project, OrderField::Id));
            let seek = after.as_deref().map(|m| {
                let mut b = Vec::new();
                keys::push_str(&mut b, m.as_bytes());
                match tie {
                    Dir::Asc => b,
                    Dir::Desc => past(&b),
                }
            });
            for kv in self.store.scan_list_from(&prefix, tie, seek.as_deref())? {
                let (k, v) = kv?;
                let id = parse_id(&k, &k[prefix.len()..])?;
                let (created, number) = instant_number(&k, &v)?;
                if follows(&id) && self.admits(&[], created, None, &id)? {
                    self.cur.push(id, Some(number));
                    if self.cur.done() {
                        break;
                    }
                }
            }
            return Ok(());
        }
        let mut ids: Vec<(String, u32)> = Vec::new();
        self.for_each_match(filters, Dir::Asc, &mut |_, id, number| {
            if follows(&id) {
                ids.push((id, number));
            }
            Ok(ControlFlow::Continue(()))
        })?;
        ids.sort_unstable_by(|a, b| directed(a.0.cmp(&b.0), tie));
        ids.into_iter()
            .for_each(|(id, n)| self.cur.push(id, Some(n)));
        Ok(())
    }

    /// A leading status/region sort: each value of the field in order, the
    /// rest of the sort planned inside it; groups the offset covers are
    /// skipped by their count, and groups before the marker's are skipped.
    pub(super) fn emit_grouped(
        &mut self,
        field: IndexField,
        dir: Dir,
        rest: &[SortKey],
        filters: &[Posting],
    ) -> Result<(), StoreError> {
        let mut values = self.distinct_values(field)?;
        if dir == Dir::Desc {
            values.reverse();
        }
        let marker_value = self.after.as_ref().map(|(_, s)| group_value(field, s));
        for v in values {
            if let (Some(mv), true) = (&marker_value, self.after.is_some()) {
                match directed(v.as_deref().cmp(&mv.as_deref()), dir) {
                    Ordering::Less => continue,
                    Ordering::Greater => self.after = None,
                    Ordering::Equal => {}
                }
            }
            let group = Posting { field, value: v };
            if filters.is_empty() && !self.residual() {
                let n = self.store.count(&group.count_key(self.project))?;
                if self.cur.skip_run(n as usize) {
                    continue;
                }
            }
            let mut sub = filters.to_vec();
            sub.push(group);
            self.emit(rest, &sub)?;
            if self.cur.done() {
                break;
            }
        }
        Ok(())
    }

    /// A leading `created_at`, `updated_at`, `id` or `plan_id` sort: one walk
    /// of the driving posting or of the order's entries.
    pub(super) fn emit_linear(
        &mut self,
        first: SortKey,
        rest: &[SortKey],
        filters: &[Posting],
    ) -> Result<(), StoreError> {
        let order = match first.field {
            SortField::CreatedAt => None,
            SortField::UpdatedAt => Some(OrderField::UpdatedAt),
            SortField::Id => Some(OrderField::Id),
            _ => Some(OrderField::PlanId),
        };
        if order.is_some() && !filters.is_empty() && self.gather_is_cheaper(filters)? {
            let store = self.store;
            let mut rows = Vec::new();
            self.for_each_match(filters, Dir::Asc, &mut |_, id, number| {
                if let Some(s) = store.state_of(&id, Some(number))? {
                    rows.push(((id, s), number));
                }
                Ok(ControlFlow::Continue(()))
            })?;
            let mut all = vec![first];
            all.extend_from_slice(rest);
            let tie = self.tie;
            rows.sort_by(|a, b| compare(&a.0, &b.0, &all, tie));
            for (row, number) in rows {
                self.push_row(row, Some(number));
            }
            return Ok(());
        }

        // Entries of one sort value come in id order in the `dir` direction,
        // except in the plan order, whose entries follow created_at in a plan.
        let needs_ties =
            !rest.is_empty() || self.tie != first.dir || order == Some(OrderField::PlanId);
        let mut run = TieRun {
            marker: self.marker_value(order),
            ..TieRun::default()
        };
        match order {
            None => {
                let (driver, others) = self.choose_driver(filters)?;
                let from = match others.is_empty() && !self.residual() {
                    true => self.skip_hours(&driver, first.dir)?,
                    false => None,
                };
                let from = from.or_else(|| self.created_seek(first.dir));
                for row in self.stream(&driver, first.dir, from)? {
                    let (created, id, number) = row?;
                    if self
                        .created
                        .passed(Micros::from_key_bytes(created), first.dir)
                    {
                        break;
                    }
                    if self.admits(&others, created, None, &id)?
                        && self
                            .visit(&mut run, needs_ties, rest, &created, created, (id, number))?
                            .is_break()
                    {
                        break;
                    }
                }
            }
            Some(order) => {
                let prefix = self
                    .store
                    .list_prefix(&keys::order_list(self.project, order));
                let seek = self.order_seek(order, first.dir);
                for kv in self
                    .store
                    .scan_list_from(&prefix, first.dir, seek.as_deref())?
                {
                    let (k, v) = kv?;
                    let (sort_value, id) = order_entry(order, &k, &k[prefix.len()..])?;
                    let (created, number) = instant_number(&k, &v)?;
                    let updated = match order {
                        OrderField::UpdatedAt => Some(instant(&k, &sort_value)?),
                        _ => None,
                    };
                    if updated.is_some_and(|u| self.updated.passed(u, first.dir)) {
                        break;
                    }
                    if self.admits(filters, created, updated, &id)?
                        && self
                            .visit(
                                &mut run,
                                needs_ties,
                                rest,
                                &sort_value,
                                created,
                                (id, number),
                            )?
                            .is_break()
                    {
                        break;
                    }
                }
            }
        }
        if !self.cur.done() {
            self.flush_run(&mut run, rest)?;
        }
        Ok(())
    }

    /// Takes the next id (with its record's number) in sort order. When
    /// ties matter, ids with an equal sort value gather in a run, ordered
    /// by the remaining keys once it ends.
    pub(super) fn visit(
        &mut self,
        run: &mut TieRun,
        needs_ties: bool,
        rest: &[SortKey],
        sort_value: &[u8],
        created: [u8; 8],
        (id, number): (String, u32),
    ) -> Step {
        if !needs_ties {
            self.push(id, Some(number))?;
            return Ok(self.cur.step());
        }
        if sort_value != run.value.as_slice() {
            self.flush_run(run, rest)?;
            if self.cur.done() {
                return Ok(ControlFlow::Break(()));
            }
            run.value = sort_value.to_vec();
        }
        run.ids.push((id, created, number));
        Ok(ControlFlow::Continue(()))
    }

    pub(super) fn flush_run(
        &mut self,
        run: &mut TieRun,
        rest: &[SortKey],
    ) -> Result<(), StoreError> {
        if run.ids.is_empty() || self.cur.skip_run(run.ids.len()) {
            run.ids.clear();
            return Ok(());
        }
        let tie = self.tie;
        let mut ids = std::mem::take(&mut run.ids);
        // The walk starts at the marker's sort value: a run of another value
        // is past it; in the run of its value, place it by the entries when
        // they carry the rest of the sort.
        if let Some((mid, m)) = &self.after {
            if run.marker.as_deref() != Some(run.value.as_slice()) {
                self.after = None;
            } else {
                let placed = match rest {
                    [] => Some(None),
                    [SortKey {
                        field: SortField::CreatedAt,
                        dir,
                    }] => Some(Some((m.created_at().key_bytes(), *dir))),
                    _ => None,
                };
                if let Some(created) = placed {
                    ids.retain(|(id, c, _)| {
                        let by_created =
                            created.map_or(Ordering::Equal, |(mc, d)| directed(c.cmp(&mc), d));
                        by_created.then_with(|| directed(id.as_str().cmp(mid), tie))
                            == Ordering::Greater
                    });
                    self.after = None;
                }
            }
        }
        let ordered: Vec<(String, u32)> = match rest {
            [] => {
                ids.sort_unstable_by(|a, b| directed(a.0.cmp(&b.0), tie));
                ids.into_iter().map(|(id, _, n)| (id, n)).collect()
            }
            // The entries carry created_at: no record needs reading.
            [SortKey {
                field: SortField::CreatedAt,
                dir,
            }] => {
                ids.sort_unstable_by(|a, b| {
                    directed(a.1.cmp(&b.1), *dir).then_with(|| directed(a.0.cmp(&b.0), tie))
                });
                ids.into_iter().map(|(id, _, n)| (id, n)).collect()
            }
            _ => {
                let mut rows = Vec::with_capacity(ids.len());
                for (id, _, n) in ids {
                    if let Some(s) = self.store.state_of(&id, Some(n))? {
                        rows.push(((id, s), n));
                    }
                }
                rows.sort_by(|a, b| compare(&a.0, &b.0, rest, tie));
                for (row, n) in rows {
                    self.push_row(row, Some(n));
                }
                return Ok(());
            }
        };
        for (id, n) in ordered {
            self.push(id, Some(n))?;
        }
        Ok(())
    }
}
