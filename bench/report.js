// Turns the measurements into medians, ratios, the markdown tables and the SVG chart.
'use strict';

const os = require('os');

function median(xs) {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

// medians[scenario][client] = { opsPerSec, cpuUsPerOp, peakRssMiB, p50Us, p99Us, reps }
function summarize(results, scenarios, clients) {
  const medians = {};
  for (const s of scenarios) {
    medians[s.id] = {};
    for (const c of clients) {
      const rs = results.filter((r) => r.scenario === s.id && r.client === c.id);
      if (rs.length === 0) continue;
      medians[s.id][c.id] = {
        reps: rs.length,
        opsPerSec: median(rs.map((r) => r.opsPerSec)),
        cpuUsPerOp: median(rs.map((r) => r.cpuUsPerOp)),
        peakRssMiB: median(rs.map((r) => r.peakRssMiB)),
        p50Us: median(rs.map((r) => r.p50Us)),
        p99Us: median(rs.map((r) => r.p99Us)),
        baseRssMiB: median(rs.map((r) => r.baseRssMiB)),
        serverCpuUsPerOp: median(rs.map((r) => r.serverCpuUsPerOp)),
      };
    }
  }
  return medians;
}

// For each scenario: the best peer by throughput, by CPU and by RSS, and every client's ratios.
function ratios(medians, scenarios, clients) {
  const out = {};
  const ours = clients.find((c) => c.ours);
  const peers = clients.filter((c) => !c.ours);
  for (const s of scenarios) {
    const m = medians[s.id];
    const present = peers.filter((p) => m[p.id]);
    if (present.length === 0) continue;
    const best = (metric, higher) =>
      present.reduce((a, b) => ((higher ? m[b.id][metric] > m[a.id][metric] : m[b.id][metric] < m[a.id][metric]) ? b : a)).id;
    const r = {
      bestPeerOps: best('opsPerSec', true),
      bestPeerCpu: best('cpuUsPerOp', false),
      bestPeerRss: best('peakRssMiB', false),
      opsRatio: {},
    };
    for (const c of clients) if (m[c.id]) r.opsRatio[c.id] = m[c.id].opsPerSec / m[r.bestPeerOps].opsPerSec;
    if (ours && m[ours.id]) {
      const o = m[ours.id];
      r.ours = {
        ops: o.opsPerSec / m[r.bestPeerOps].opsPerSec,
        cpu: o.cpuUsPerOp / m[r.bestPeerCpu].cpuUsPerOp,
        rss: o.peakRssMiB / m[r.bestPeerRss].peakRssMiB,
      };
      if (m.ioredis) {
        r.ours.rssVsIoredis = o.peakRssMiB / m.ioredis.peakRssMiB;
        // What each client holds itself: its peak above the workload's own (flood's floor).
        if (m.floor) r.ours.rssAboveFloorVsIoredis = (o.peakRssMiB - m.floor.peakRssMiB) / (m.ioredis.peakRssMiB - m.floor.peakRssMiB);
      }
      // The client's own CPU: above what the workload spends by itself (CPU_FLOOR).
      if (m.cpuFloor) r.ours.cpuAboveFloor = (o.cpuUsPerOp - m.cpuFloor.cpuUsPerOp) / (m[r.bestPeerCpu].cpuUsPerOp - m.cpuFloor.cpuUsPerOp);
      if (s.id === 'seq') {
        const bestP50 = best('p50Us', false);
        r.bestPeerP50 = bestP50;
        r.ours.p50 = o.p50Us / m[bestP50].p50Us;
        r.ours.p99 = o.p99Us / Math.min(...present.map((p) => m[p.id].p99Us));
      }
    }
    out[s.id] = r;
  }
  return out;
}

const fmtInt = (x) => (x == null ? '–' : Math.round(x).toLocaleString('en-US'));
const fmt1 = (x) => (x == null ? '–' : x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : Math.round(x).toLocaleString('en-US'));
const fmtX = (x) => (x == null ? '–' : `${x.toFixed(2)}×`);

function tables(medians, rat, scenarios, clients, footnotes, legend) {
  const ours = clients.find((c) => c.ours);
  const head = (last) => `| scenario | ${clients.map((c) => c.short || c.label).join(' | ')} | ${last} |\n|---|${clients.map(() => '--:').join('|')}|--:|`;
  const cell = (s, c, metric, f, bestId) => {
    const v = medians[s.id][c.id];
    if (!v) return '–';
    const t = f(v[metric]);
    return c.id === bestId ? `**${t}**` : t;
  };
  const name = (s) => `${s.title}${s.note ? s.note : ''}`;
  const lines = [];
  if (legend) lines.push(legend, '');

  lines.push('Throughput, ops/s (median; **bold** = best peer):', '', head('ours ÷ best peer'));
  for (const s of scenarios) {
    const r = rat[s.id] || {};
    lines.push(`| ${name(s)} | ${clients.map((c) => cell(s, c, 'opsPerSec', fmtInt, r.bestPeerOps)).join(' | ')} | ${fmtX(r.ours && r.ours.ops)} |`);
  }
  lines.push('', 'Client CPU, µs per op (user + system of the whole process, native threads included; **bold** = lowest peer):', '', head('ours ÷ lowest peer'));
  for (const s of scenarios) {
    const r = rat[s.id] || {};
    lines.push(`| ${name(s)} | ${clients.map((c) => cell(s, c, 'cpuUsPerOp', fmt1, r.bestPeerCpu)).join(' | ')} | ${fmtX(r.ours && r.ours.cpu)} |`);
  }
  const floored = ours ? scenarios.filter((s) => medians[s.id].cpuFloor && rat[s.id] && rat[s.id].ours && rat[s.id].ours.cpuAboveFloor != null) : [];
  if (floored.length) {
    const each = (f) => floored.map((s) => `${s.title} ${f(s)}`).join(', ');
    lines.push(
      '',
      `The workloads spend CPU themselves (keys, values, promises, checking replies), counted for every client: a stand-in that ` +
        `answers at once from a table (\`cpuFloor\` in bench/clients.js) uses ${each((s) => `${fmt1(medians[s.id].cpuFloor.cpuUsPerOp)} µs`)} per op. ` +
        `Above that floor, ours ÷ lowest peer: ${each((s) => {
          const m = medians[s.id];
          const r = rat[s.id];
          return `${fmtX(r.ours.cpuAboveFloor)} (${fmt1(m[ours.id].cpuUsPerOp - m.cpuFloor.cpuUsPerOp)} vs ${fmt1(m[r.bestPeerCpu].cpuUsPerOp - m.cpuFloor.cpuUsPerOp)} µs)`;
        })}.`
    );
  }
  // What the machine can do at all: the client and the six servers share its cores, so client +
  // servers' CPU per op bounds the throughput (batch's 2× target is checked against this).
  const bound = ours ? scenarios.filter((s) => s.id === 'batch' && rat[s.id] && medians[s.id][ours.id] && medians[s.id][ours.id].serverCpuUsPerOp != null) : [];
  for (const s of bound) {
    const m = medians[s.id];
    const o = m[ours.id];
    const best = m[rat[s.id].bestPeerOps];
    const cores = os.cpus().length;
    const cap = (cores * 1e6) / (o.cpuUsPerOp + o.serverCpuUsPerOp);
    lines.push(
      '',
      `${s.title}: the servers spend ${fmt1(o.serverCpuUsPerOp)} µs of CPU per op with ours (${fmt1(best.serverCpuUsPerOp)} with the best peer; warm-up included), ` +
        `ours ${fmt1(o.cpuUsPerOp)} µs: on ${cores} cores shared by the client and the servers that is at most ${fmtInt(cap)} ops/s, ` +
        `${fmtX(cap / best.opsPerSec)} the best peer's throughput, with every core 100 % busy.`
    );
  }
  lines.push('', 'Peak RSS of the client process, MiB (**bold** = lowest peer):', '', head('ours ÷ lowest peer'));
  for (const s of scenarios) {
    const r = rat[s.id] || {};
    lines.push(`| ${name(s)} | ${clients.map((c) => cell(s, c, 'peakRssMiB', fmt1, r.bestPeerRss)).join(' | ')} | ${fmtX(r.ours && r.ours.rss)} |`);
  }
  const seq = scenarios.find((s) => s.id === 'seq');
  if (seq && medians.seq) {
    const r = rat.seq || {};
    lines.push('', 'seq latency, µs (one GET at a time):', '', `| | ${clients.map((c) => c.short || c.label).join(' | ')} | ours ÷ best peer |`, `|---|${clients.map(() => '--:').join('|')}|--:|`);
    lines.push(`| p50 | ${clients.map((c) => cell(seq, c, 'p50Us', fmt1, r.bestPeerP50)).join(' | ')} | ${fmtX(r.ours && r.ours.p50)} |`);
    lines.push(`| p99 | ${clients.map((c) => cell(seq, c, 'p99Us', fmt1, null)).join(' | ')} | ${fmtX(r.ours && r.ours.p99)} |`);
  }
  if (ours && rat.flood && rat.flood.ours && rat.flood.ours.rssVsIoredis != null) {
    const o = medians.flood[ours.id];
    const io = medians.flood.ioredis;
    lines.push(
      '',
      `Peak RSS with 100,000 GETs in flight (flood): ours ÷ ioredis = ${fmtX(rat.flood.ours.rssVsIoredis)} ` +
        `(${fmt1(o.peakRssMiB)} vs ${fmt1(io.peakRssMiB)} MiB; above each process's RSS right after connecting: ` +
        `${fmt1(o.peakRssMiB - o.baseRssMiB)} vs ${fmt1(io.peakRssMiB - io.baseRssMiB)} MiB, ${fmtX((o.peakRssMiB - o.baseRssMiB) / (io.peakRssMiB - io.baseRssMiB))}).`
    );
    const floor = medians.flood.floor;
    if (floor) {
      lines.push(
        '',
        `The workload itself peaks at ${fmt1(floor.peakRssMiB)} MiB with a stand-in that only makes one promise per GET and resolves it ` +
          `(\`floor\` in bench/clients.js; no client returning promises can go below it` +
          (floor.peakRssMiB > io.peakRssMiB / 2 ? `, and it is above half of ioredis's peak` : '') +
          '). ' +
          `Above that floor, ours holds ${fmt1(o.peakRssMiB - floor.peakRssMiB)} MiB and ioredis ${fmt1(io.peakRssMiB - floor.peakRssMiB)} MiB: ` +
          `${fmtX(rat.flood.ours.rssAboveFloorVsIoredis)}.`
      );
    }
  }
  if (footnotes.length) lines.push('', ...footnotes.map((f, i) => `${i + 1}. ${f}`));
  return lines.join('\n');
}

// Grouped bars: one group per scenario, one bar per client, height = ops/s ÷ best peer's.
function chartSvg(medians, rat, scenarios, clients, subtitle) {
  const colors = ['#d62728', '#1f77b4', '#ff7f0e', '#ffbb78', '#2ca02c', '#9467bd', '#8c564b'];
  const W = 860;
  const H = 420;
  const left = 56;
  const right = 16;
  const top = 56;
  const bottom = 96;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  let maxR = 1;
  for (const s of scenarios) for (const c of clients) {
    const v = rat[s.id] && rat[s.id].opsRatio[c.id];
    if (v > maxR) maxR = v;
  }
  const yMax = Math.ceil(maxR * 4) / 4 + 0.25;
  const y = (v) => top + plotH - (v / yMax) * plotH;
  const esc = (t) => String(t).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">Throughput ÷ best peer, per scenario (higher is better)</text>`);
  out.push(`<text x="${W / 2}" y="40" text-anchor="middle" fill="#555">${esc(subtitle)}</text>`);
  // grid and axis
  const step = yMax > 4 ? 1 : yMax > 2 ? 0.5 : 0.25;
  for (let v = 0; v <= yMax + 1e-9; v += step) {
    out.push(`<line x1="${left}" x2="${W - right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" fill="#333">${v.toFixed(2)}×</text>`);
  }
  out.push(`<line x1="${left}" x2="${W - right}" y1="${y(1).toFixed(1)}" y2="${y(1).toFixed(1)}" stroke="#333" stroke-dasharray="4 3"/>`);
  out.push(`<text x="${W - right - 2}" y="${(y(1) - 4).toFixed(1)}" text-anchor="end" fill="#333" font-size="10">best peer</text>`);
  const groupW = plotW / scenarios.length;
  const barW = Math.min(18, (groupW - 16) / clients.length);
  scenarios.forEach((s, gi) => {
    const gx = left + gi * groupW + (groupW - barW * clients.length) / 2;
    clients.forEach((c, ci) => {
      const v = rat[s.id] && rat[s.id].opsRatio[c.id];
      const x = gx + ci * barW;
      if (v == null) {
        out.push(`<text x="${(x + barW / 2).toFixed(1)}" y="${(y(0) - 4).toFixed(1)}" text-anchor="middle" fill="#999" font-size="10">n/a</text>`);
        return;
      }
      out.push(`<rect x="${x.toFixed(1)}" y="${y(v).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(y(0) - y(v)).toFixed(1)}" fill="${colors[ci % colors.length]}"><title>${esc(`${c.label} · ${s.title}: ${v.toFixed(2)}× best peer (${Math.round(medians[s.id][c.id].opsPerSec)} ops/s)`)}</title></rect>`);
      if (c.ours) out.push(`<text x="${(x + barW / 2 - 1).toFixed(1)}" y="${(y(v) - 4).toFixed(1)}" text-anchor="middle" font-size="10" font-weight="bold">${v.toFixed(2)}</text>`);
    });
    out.push(`<text x="${(left + gi * groupW + groupW / 2).toFixed(1)}" y="${(top + plotH + 18).toFixed(1)}" text-anchor="middle" font-weight="bold">${esc(s.title)}</text>`);
  });
  out.push(`<line x1="${left}" x2="${W - right}" y1="${y(0)}" y2="${y(0)}" stroke="#333"/>`);
  // legend
  const perRow = 4;
  clients.forEach((c, ci) => {
    const lx = left + (ci % perRow) * (plotW / perRow);
    const ly = top + plotH + 44 + Math.floor(ci / perRow) * 20;
    out.push(`<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${colors[ci % colors.length]}"/>`);
    out.push(`<text x="${lx + 18}" y="${ly}" fill="#222">${esc(c.label)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

module.exports = { summarize, ratios, tables, chartSvg, median };
