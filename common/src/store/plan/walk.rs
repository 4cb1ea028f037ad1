//! The walks that emit a page in sort order: by a leading `created_at`
//! (the driving postings) or an order (`updated_at`, `id`, `plan_id`), by
//! groups of a leading status/region sort, or by id alone; and the tie runs
//! that order equal sort values by the remaining keys.

use super::*;

impl Planner<'_> {
    /// Only the `id` tie-break is left: the id order, walked (or the
    /// filters' few matches gathered and sorted) like any other order.
    /// Inside the marker's place in every earlier key, the records that
    /// follow it are those past its id.
    pub(super) fn emit_by_id(&mut self, filters: &[Posting]) -> Result<(), StoreError> {
        let by_id = SortKey {
            field: SortField::Id,
            dir: self.tie,
        };
        self.emit_linear(by_id, &[], filters)
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
        for v in values {
            if let Some(p) = self.page.marker() {
                match p.group_order(field, v.as_deref(), dir) {
                    Ordering::Less => continue,
                    Ordering::Greater => self.page.pass_marker(),
                    Ordering::Equal => {}
                }
            }
            let group = Posting { field, value: v };
            if filters.is_empty() && !self.residual() {
                let n = self.store.count(&group.count_key(self.project))?;
                if self.page.skip_run(n as usize) {
                    continue;
                }
            }
            let mut sub = filters.to_vec();
            sub.push(group);
            self.emit(rest, &sub)?;
            if self.page.done() {
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
            let mut all = vec![first];
            all.extend_from_slice(rest);
            return self.emit_matches_sorted(&all, filters);
        }
        if let (
            Some(OrderField::PlanId),
            [SortKey {
                field: SortField::CreatedAt,
                dir,
            }],
        ) = (order, rest)
        {
            if *dir == self.tie {
                return self.emit_plan_then_created(first.dir, *dir, filters);
            }
        }

        // Entries of one sort value follow record numbers (the plan order:
        // created_at), not ids: every walk gathers them in tie runs (the id
        // order's are one record each).
        let mut run = TieRun {
            marker: self.page.marker().and_then(|p| p.value_in(order)),
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
                    let (created, number) = row?;
                    if self
                        .created
                        .passed(Micros::from_key_bytes(created), first.dir)
                    {
                        break;
                    }
                    let tied = Tied {
                        id: None,
                        created,
                        number,
                    };
                    if self.admits(&others, created, None, number)?
                        && self.visit(&mut run, rest, &created, tied)?.is_break()
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
                    let e = order_entry(order, &prefix, &k, &v)?;
                    let updated = match order {
                        OrderField::UpdatedAt => Some(instant(&k, &e.value)?),
                        _ => None,
                    };
                    if updated.is_some_and(|u| self.updated.passed(u, first.dir)) {
                        break;
                    }
                    let tied = Tied {
                        id: e.id,
                        created: e.created,
                        number: e.number,
                    };
                    if self.admits(filters, e.created, updated, e.number)?
                        && self.visit(&mut run, rest, &e.value, tied)?.is_break()
                    {
                        break;
                    }
                }
            }
        }
        if !self.page.done() {
            self.flush_run(&mut run, rest)?;
        }
        Ok(())
    }

    /// A `plan_id` sort, then `created_at` (ties by id the same way): a
    /// plan's entries are keyed `(created_at, id)` within its value, so
    /// each value's range is walked in the `created_at` direction, values in
    /// the `plan_id` direction, and nothing is gathered — the null plan
    /// holds a third of a project's records, which were one tie run read
    /// whole for every page.
    fn emit_plan_then_created(
        &mut self,
        dir: Dir,
        created: Dir,
        filters: &[Posting],
    ) -> Result<(), StoreError> {
        let order = OrderField::PlanId;
        let prefix = self
            .store
            .list_prefix(&keys::order_list(self.project, order));
        // The marker's value or the first: groups before it are skipped.
        let mut seek = self.order_seek(order, dir);
        let marker_value = self.page.marker().and_then(|p| p.value_in(Some(order)));
        loop {
            let Some(kv) = self
                .store
                .scan_list_from(&prefix, dir, seek.as_deref())?
                .next()
            else {
                return Ok(());
            };
            let (k, _) = kv?;
            let (value, _) = keys::split_plan_order(&k[prefix.len()..])
                .ok_or_else(|| StoreError::corrupt(&k, "bad order key"))?;
            let value = value.to_vec();
            let mut group = prefix.clone();
            group.extend_from_slice(&value);
            for kv in self.store.scan_list(&group, created) {
                let (k, v) = kv?;
                let e = order_entry(order, &prefix, &k, &v)?;
                if !self.admits(filters, e.created, None, e.number)? {
                    continue;
                }
                if let Some(p) = self.page.marker() {
                    // In the marker's group, what follows it by the rule;
                    // any later group follows it whole.
                    let tied = Tied {
                        id: e.id,
                        created: e.created,
                        number: e.number,
                    };
                    if marker_value.as_deref() == Some(value.as_slice())
                        && !p.follows_in_run(&tied, Some(created))
                    {
                        continue;
                    }
                    self.page.pass_marker();
                }
                self.page.push(e.number);
                if self.page.done() {
                    return Ok(());
                }
            }
            seek = Some(match dir {
                Dir::Asc => lists::prefix_end(&value),
                Dir::Desc => value,
            });
        }
    }

    /// Every match of `filters`, read (in number order) and sorted by
    /// `keys` in memory: what a walk costs when the filters leave few.
    pub(super) fn emit_matches_sorted(
        &mut self,
        keys: &[SortKey],
        filters: &[Posting],
    ) -> Result<(), StoreError> {
        let mut numbers = Vec::new();
        self.for_each_match(filters, Dir::Asc, &mut |_, number| {
            numbers.push(number);
            Ok(ControlFlow::Continue(()))
        })?;
        let mut rows: Vec<(Row, u32)> = self
            .store
            .rows_of(&numbers)?
            .into_iter()
            .zip(numbers)
            .collect();
        let tie = self.tie;
        rows.sort_by(|a, b| compare(&a.0, &b.0, keys, tie));
        for (row, number) in rows {
            self.page.push_row(&row, number);
            if self.page.done() {
                break;
            }
        }
        Ok(())
    }

    /// Takes the next record in sort order: records with an equal sort
    /// value gather in a run, ordered by the remaining keys and by id once
    /// it ends (a run is usually one record, and then nothing is read).
    pub(super) fn visit(
        &mut self,
        run: &mut TieRun,
        rest: &[SortKey],
        sort_value: &[u8],
        tied: Tied,
    ) -> Step {
        if sort_value != run.value.as_slice() {
            self.flush_run(run, rest)?;
            if self.page.done() {
                return Ok(ControlFlow::Break(()));
            }
            run.value = sort_value.to_vec();
        }
        run.ids.push(tied);
        Ok(ControlFlow::Continue(()))
    }

    /// Gives every record of a run its id (read from the record when its
    /// entry did not hold it): ties are ordered by id.
    fn name_all(&self, ids: &mut [Tied]) -> Result<(), StoreError> {
        for t in ids.iter_mut().filter(|t| t.id.is_none()) {
            t.id = Some(self.store.row_of(t.number)?.0);
        }
        Ok(())
    }

    pub(super) fn flush_run(
        &mut self,
        run: &mut TieRun,
        rest: &[SortKey],
    ) -> Result<(), StoreError> {
        if run.ids.is_empty() || self.page.skip_run(run.ids.len()) {
            run.ids.clear();
            return Ok(());
        }
        let tie = self.tie;
        let mut ids = std::mem::take(&mut run.ids);
        // The walk starts at the marker's sort value: a run of another value
        // is past it; in the run of its value, place it by the entries when
        // they carry the rest of the sort.
        let in_marker_run = run.marker.as_deref() == Some(run.value.as_slice());
        if let Some(p) = self.page.take_marker().filter(|_| in_marker_run) {
            let by_entries = match rest {
                [] => Some(None),
                [SortKey {
                    field: SortField::CreatedAt,
                    dir,
                }] => Some(Some(*dir)),
                _ => None,
            };
            match by_entries {
                Some(created) => {
                    self.name_all(&mut ids)?;
                    ids.retain(|t| p.follows_in_run(t, created));
                }
                // Placed record by record, as they are read (`push_row`).
                None => self.page.keep_marker(p),
            }
        }
        let ordered: Vec<u32> = match rest {
            [] => {
                if ids.len() > 1 {
                    self.name_all(&mut ids)?;
                }
                ids.sort_by(|a, b| directed(a.id().cmp(b.id()), tie));
                ids.into_iter().map(|t| t.number).collect()
            }
            // The entries carry created_at: only tied records are read.
            [SortKey {
                field: SortField::CreatedAt,
                dir,
            }] => {
                ids.sort_by(|a, b| directed(a.created.cmp(&b.created), *dir));
                let mut out = Vec::with_capacity(ids.len());
                for group in ids.chunk_by_mut(|a, b| a.created == b.created) {
                    if group.len() > 1 {
                        self.name_all(group)?;
                        group.sort_by(|a, b| directed(a.id().cmp(b.id()), tie));
                    }
                    out.extend(group.iter().map(|t| t.number));
                }
                out
            }
            _ => {
                let mut rows = Vec::with_capacity(ids.len());
                for t in ids {
                    rows.push((self.store.row_of(t.number)?, t.number));
                }
                rows.sort_by(|a, b| compare(&a.0, &b.0, rest, tie));
                for (row, n) in rows {
                    self.page.push_row(&row, n);
                }
                return Ok(());
            }
        };
        for n in ordered {
            self.push(n)?;
        }
        Ok(())
    }
}
