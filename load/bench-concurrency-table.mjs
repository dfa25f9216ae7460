// Markdown tables for load/bench-concurrency from loadgen's JSON lines (one per run, with
// `scenario`, `target` and `run` added by the script). Usage:
//   MACHINE=… VERSIONS=… LOCATION=… STORE=disk|s3 node bench-concurrency-table.mjs RAW.jsonl
// "best / median" over the runs; latencies are the median over runs of each run's p50 / p99;
// errors, failures and injected events are summed over the runs; RSS is the maximum over runs.
import { readFileSync } from "node:fs";

const rows = readFileSync(process.argv[2], "utf8")
  .split("\n")
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l));

const median = (xs) => {
  const v = xs.filter((x) => typeof x === "number").sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
const max = (xs) => {
  const v = xs.filter((x) => typeof x === "number");
  return v.length ? Math.max(...v) : null;
};
const sum = (xs) => xs.reduce((a, x) => a + (typeof x === "number" ? x : 0), 0);
const fmt = (x, digits = 3) => {
  if (x === null || x === undefined || Number.isNaN(x)) return "-";
  if (Math.abs(x) >= 100) return String(Math.round(x));
  return String(Number(x.toPrecision(digits)));
};
const ratio = (a, b) => (a === null || b === null || !b ? "-" : `${(a / b).toFixed(2)}×`);
const sumMap = (maps) => {
  const out = {};
  for (const m of maps) for (const [k, v] of Object.entries(m ?? {})) out[k] = (out[k] ?? 0) + v;
  return out;
};
const mapText = (m) =>
  Object.keys(m).length ? Object.entries(m).map(([k, v]) => `${k} ×${v}`).join(", ") : "0";
const MiB = 1024 * 1024;

const scenarios = [...new Set(rows.map((r) => r.scenario))];
const out = [];
const when = new Date().toISOString().slice(0, 16).replace("T", " ");
out.push(`## Concurrency, store: ${process.env.STORE ?? "?"} (${when} UTC)\n`);
out.push(`Machine: ${process.env.MACHINE ?? "?"}; ${process.env.VERSIONS ?? ""}.`);
out.push(`Data: ${process.env.LOCATION ?? "?"}.`);
out.push(
  'MB = 10^6 bytes. "best / median" over the runs. Latency: median over runs of each run\'s ' +
    "p50 / p99 in ms (PATCH and download latencies include their whole body). RSS: the " +
    "largest VmRSS sampled every 100 ms during the uploads / during the downloads, max over runs, " +
    "and VmHWM (the process's peak since its start) at the end, MiB. CPU: server user+system " +
    "seconds per GiB uploaded / downloaded (median).\n",
);

for (const scenario of scenarios) {
  const runs = rows.filter((r) => r.scenario === scenario);
  const targets = [...new Set(runs.map((r) => r.target))];
  const tus = runs.filter((r) => r.mode !== "s3");
  const first = tus[0] ?? runs[0];
  const nRuns = Math.max(...runs.map((r) => r.run));
  let title = `### ${scenario}: `;
  if (first.mode === "s3") {
    title += `${fmt(first.size / MiB)} MiB`;
  } else {
    title +=
      `${first.uploads} × ${fmt(first.size / MiB)} MiB, ${fmt(first.chunk / MiB)} MiB per PATCH` +
      (first.rate ? `, paced to ${fmt(first.rate / 1024)} KiB/s per upload` : "") +
      (first.pause_prob ? `, stall p=${first.pause_prob} per PATCH (${first.pause_ms[0] / 1000}–${first.pause_ms[1] / 1000} s)` : "") +
      (first.disconnect_prob ? `, disconnect p=${first.disconnect_prob} per PATCH` : "") +
      (first.uploads > 1 ? `, then ${first.uploads} concurrent verified downloads` : ", then one verified download");
  }
  out.push(`${title}; ${nRuns} run(s)\n`);

  const stats = {};
  for (const target of targets) {
    const rs = runs.filter((r) => r.target === target);
    if (rs[0].mode === "s3") {
      const up = rs.map((r) => r.upload.mb_s);
      const down = rs.map((r) => r.download?.mb_s);
      stats[target] = {
        upBest: max(up), upMed: median(up), downBest: max(down), downMed: median(down),
        raw: true, verified: rs.every((r) => r.download?.verified !== false),
        parts: rs[0].parts, partSize: rs[0].part_size,
        rss: max(rs.map((r) => r.server_proc?.max_rss_upload_mib)),
        hwm: max(rs.map((r) => r.server_proc?.hwm_mib)),
      };
      continue;
    }
    const up = rs.map((r) => r.upload.mb_s);
    const down = rs.map((r) => r.download.mb_s);
    const kinds = ["create", "patch", "head", "share", "download", "delete"];
    const lat = {};
    for (const k of kinds) {
      const present = rs.filter((r) => r.requests[k]);
      if (!present.length) continue;
      lat[k] = {
        p50: median(present.map((r) => r.requests[k].p50_ms)),
        p99: median(present.map((r) => r.requests[k].p99_ms)),
        count: sum(present.map((r) => r.requests[k].count)),
        errors: sumMap(present.map((r) => r.requests[k].errors)),
        retried: sumMap(present.map((r) => r.requests[k].retried)),
      };
    }
    const gib = (r, key) => (r[key].bytes || 0) / (1024 * MiB);
    stats[target] = {
      upBest: max(up), upMed: median(up), downBest: max(down), downMed: median(down), lat,
      ok: sum(rs.map((r) => r.upload.ok)), failed: sum(rs.map((r) => r.upload.failed)),
      dlOk: sum(rs.map((r) => r.download.ok)), dlFailed: sum(rs.map((r) => r.download.failed)),
      errors: sum(rs.map((r) => r.errors)),
      errTus: ["create", "patch", "head"].reduce((a, k) => a + sum(Object.values(lat[k]?.errors ?? {})), 0),
      errShare: sum(Object.values(lat.share?.errors ?? {})),
      errDownload: sum(Object.values(lat.download?.errors ?? {})),
      pauses: sum(rs.map((r) => r.injected.pauses)),
      disconnects: sum(rs.map((r) => r.injected.disconnects)),
      timeP50: median(rs.map((r) => r.upload.time_p50_s)),
      timeMax: max(rs.map((r) => r.upload.time_max_s)),
      rssUp: max(rs.map((r) => r.server_proc?.max_rss_upload_mib)),
      rssDown: max(rs.map((r) => r.server_proc?.max_rss_download_mib)),
      hwm: max(rs.map((r) => r.server_proc?.hwm_mib)),
      cpuUp: median(rs.map((r) => (r.server_proc?.cpu_upload_s ?? NaN) / gib(r, "upload"))),
      cpuDown: median(rs.map((r) => (r.server_proc?.cpu_download_s ?? NaN) / gib(r, "download"))),
      clientCpu: median(rs.map((r) => r.client_proc?.cpu_s)),
      failures: rs.flatMap((r) => r.failures ?? []),
    };
  }

  const servers = targets.filter((t) => !stats[t].raw);
  out.push(
    "| | upload MB/s best / median | download MB/s best / median | uploads ok / failed | downloads verified / failed | errors create+patch+head / share / download | peak RSS up / down / VmHWM MiB | CPU s/GiB up / down |",
  );
  out.push("|---|---|---|---|---|---|---|---|");
  for (const t of servers) {
    const s = stats[t];
    out.push(
      `| ${t} | ${fmt(s.upBest)} / ${fmt(s.upMed)} | ${fmt(s.downBest)} / ${fmt(s.downMed)} | ${s.ok} / ${s.failed} | ${s.dlOk} / ${s.dlFailed} | ${s.errTus} / ${s.errShare} / ${s.errDownload} | ${fmt(s.rssUp)} / ${fmt(s.rssDown)} / ${fmt(s.hwm)} | ${fmt(s.cpuUp)} / ${fmt(s.cpuDown)} |`,
    );
  }
  if (stats.ferry && stats["tus-node"]) {
    const a = stats.ferry, b = stats["tus-node"];
    out.push(
      `| ferry / tus-node | ${ratio(a.upBest, b.upBest)} / ${ratio(a.upMed, b.upMed)} | ${ratio(a.downBest, b.downBest)} / ${ratio(a.downMed, b.downMed)} | | | | ${ratio(a.rssUp, b.rssUp)} / ${ratio(a.rssDown, b.rssDown)} / ${ratio(a.hwm, b.hwm)} | ${ratio(a.cpuUp, b.cpuUp)} / ${ratio(a.cpuDown, b.cpuDown)} |`,
    );
  }
  for (const t of targets.filter((t) => stats[t].raw)) {
    const s = stats[t];
    out.push(
      `| ${t} (sequential multipart PUT, ${s.parts} part(s) of ≤ ${fmt(s.partSize / MiB)} MiB; one GET) | ${fmt(s.upBest)} / ${fmt(s.upMed)} | ${fmt(s.downBest)} / ${fmt(s.downMed)} | | ${s.verified ? "verified" : "MISMATCH"} | | S3 server: ${fmt(s.rss)} / - / ${fmt(s.hwm)} | |`,
    );
    for (const server of servers) {
      const a = stats[server];
      out.push(
        `| ${server} / ${t} | ${ratio(a.upBest, s.upBest)} / ${ratio(a.upMed, s.upMed)} | ${ratio(a.downBest, s.downBest)} / ${ratio(a.downMed, s.downMed)} | | | | | |`,
      );
    }
  }
  out.push("");
  out.push("| latency p50 / p99 ms (count) | " + servers.join(" | ") + " |");
  out.push("|---|" + servers.map(() => "---|").join(""));
  for (const k of ["create", "patch", "head", "share", "download", "delete"]) {
    if (!servers.some((t) => stats[t].lat[k])) continue;
    out.push(
      `| ${k} | ` +
        servers
          .map((t) => {
            const l = stats[t].lat[k];
            return l ? `${fmt(l.p50)} / ${fmt(l.p99)} (${l.count})` : "-";
          })
          .join(" | ") +
        " |",
    );
  }
  out.push("");
  for (const t of servers) {
    const s = stats[t];
    const errs = Object.entries(s.lat)
      .map(([k, l]) => [k, mapText(l.errors), mapText(l.retried)])
      .filter(([, e, r]) => e !== "0" || r !== "0")
      .map(([k, e, r]) => `${k}: errors ${e}; retried ${r}`);
    out.push(
      `- ${t}: injected ${s.pauses} stalls and ${s.disconnects} disconnects; ` +
        `per-upload time p50 ${fmt(s.timeP50)} s, max ${fmt(s.timeMax)} s; ` +
        `loadgen CPU ${fmt(s.clientCpu)} s per run (median)` +
        (errs.length ? `; ${errs.join("; ")}` : "; no errors, no retries") +
        (s.failures.length ? `; failures: ${s.failures.slice(0, 3).join(" | ")}` : ""),
    );
  }
  out.push("");
}
console.log(out.join("\n"));
