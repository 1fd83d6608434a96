#!/usr/bin/env python3
"""Asks for a database over the legacy pgsql interface with ops-lib-pgsql."""

import ops
import pgsql


class PgsqlClientCharm(ops.CharmBase):
    _stored = ops.StoredState()

    def __init__(self, framework):
        super().__init__(framework)
        self._stored.set_default(master="", standbys="")
        self.db = pgsql.PostgreSQLClient(self, "db")
        framework.observe(self.db.on.database_relation_joined, self._on_joined)
        framework.observe(self.db.on.master_changed, self._on_master_changed)
        framework.observe(self.db.on.standby_changed, self._on_standby_changed)
        framework.observe(self.on.start, self._show)
        framework.observe(self.on.get_master_action, self._get_master)

    def _on_joined(self, event):
        database = self.config["database"]
        if self.unit.is_leader():
            event.database = database
            event.extensions = [e for e in self.config["extensions"].split(",") if e]
        elif event.database != database:
            event.defer()

    def _on_master_changed(self, event):
        if event.database != self.config["database"]:
            return
        self._stored.master = event.master.conn_str if event.master else ""
        self._show(event)

    def _on_standby_changed(self, event):
        if event.database != self.config["database"]:
            return
        self._stored.standbys = "\n".join(s.conn_str for s in event.standbys)
        self._show(event)

    def _show(self, _event):
        if self._stored.master:
            self.unit.status = ops.ActiveStatus("master ready")
        else:
            self.unit.status = ops.WaitingStatus("waiting for a master")

    def _get_master(self, event):
        if not self._stored.master:
            event.fail("no master yet")
            return
        event.set_results({"master": self._stored.master, "standbys": self._stored.standbys})


if __name__ == "__main__":
    ops.main(PgsqlClientCharm)
