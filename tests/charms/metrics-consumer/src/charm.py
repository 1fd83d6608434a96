#!/usr/bin/env python3
"""A stand-in for Prometheus and Grafana: reads the prometheus_scrape and
grafana_dashboard providers' bags as the published consumers do."""

import base64
import json
import lzma

import ops


def _topology_labels(metadata, unit=None):
    labels = {
        "juju_model": metadata.get("model", ""),
        "juju_model_uuid": metadata.get("model_uuid", ""),
        "juju_application": metadata.get("application", ""),
        "juju_charm": metadata.get("charm_name", ""),
    }
    if unit:
        labels["juju_unit"] = unit
    return labels


class MetricsConsumerCharm(ops.CharmBase):
    def __init__(self, framework):
        super().__init__(framework)
        framework.observe(self.on.scrape_config_action, self._scrape_config)
        framework.observe(self.on.alert_rules_action, self._alert_rules)
        framework.observe(self.on.dashboards_action, self._dashboards)
        framework.observe(self.on.start, self._active)

    def _active(self, _):
        self.unit.status = ops.ActiveStatus()

    def _scrape_config(self, event):
        configs = []
        for relation in self.model.relations["metrics-endpoint"]:
            if relation.app is None:
                continue
            bag = relation.data[relation.app]
            jobs = json.loads(bag.get("scrape_jobs", "[]"))
            metadata = json.loads(bag.get("scrape_metadata", "{}"))
            units = []
            for unit in sorted(relation.units, key=lambda u: u.name):
                data = relation.data[unit]
                address = data.get("prometheus_scrape_unit_address")
                name = data.get("prometheus_scrape_unit_name", unit.name)
                if address:
                    units.append((name, address))
            prefix = "juju_{}_{}_{}".format(
                metadata.get("model", ""),
                metadata.get("model_uuid", "")[:8],
                metadata.get("application", relation.app.name),
            )
            for n, job in enumerate(jobs):
                static_configs = []
                for static in job.get("static_configs", []):
                    for target in static.get("targets", []):
                        host, _, port = target.rpartition(":")
                        if host == "*":
                            for name, address in units:
                                labels = _topology_labels(metadata, name)
                                labels.update(static.get("labels", {}))
                                static_configs.append(
                                    {"targets": [f"{address}:{port}"], "labels": labels}
                                )
                        else:
                            labels = _topology_labels(metadata)
                            labels.update(static.get("labels", {}))
                            static_configs.append({"targets": [target], "labels": labels})
                config = {k: v for k, v in job.items() if k != "static_configs"}
                config["job_name"] = "{}_{}".format(prefix, job.get("job_name", n))
                config["static_configs"] = static_configs
                configs.append(config)
        event.set_results({"config": json.dumps(configs)})

    def _alert_rules(self, event):
        rules = {}
        for relation in self.model.relations["metrics-endpoint"]:
            if relation.app is not None:
                rules[relation.app.name] = json.loads(
                    relation.data[relation.app].get("alert_rules", "{}")
                )
        event.set_results({"rules": json.dumps(rules)})

    def _dashboards(self, event):
        dashboards = {}
        for relation in self.model.relations["grafana-dashboard"]:
            if relation.app is None:
                continue
            sent = json.loads(relation.data[relation.app].get("dashboards", "{}"))
            for template_id, template in sent.get("templates", {}).items():
                content = lzma.decompress(base64.b64decode(template["content"]))
                dashboards[f"{relation.app.name}/{template_id}"] = json.loads(content)
        event.set_results({"dashboards": json.dumps(dashboards)})


if __name__ == "__main__":
    ops.main(MetricsConsumerCharm)
