'use strict';

// A grouped bar chart (SVG) of each workload's ops/s relative to the best
// pure-JS client, so workloads of very different speeds share one scale.

const COLORS = { fluxor: '#d9480f', 'fluxor-traced': '#ffa94d', ioredis: '#1c7ed6', 'ioredis-auto': '#74c0fc', 'node-redis': '#37b24d' };

function chart(summary, clients) {
  const names = Object.keys(summary);
  const barH = 9;
  const groupH = clients.length * barH + 14;
  const left = 210;
  const width = 760;
  const plotW = width - left - 60;
  const top = 40;
  const height = top + names.length * groupH + 40;
  const maxRatio = Math.max(2, ...names.flatMap((n) => clients.map((c) => rel(summary[n], c))));
  const x = (r) => left + (r / maxRatio) * plotW;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left}" y="16" font-size="13" font-weight="bold">ops/s relative to the faster pure-JS client (1.0 = that client)</text>`,
  ];
  const step = Math.min(130, (width - left) / clients.length);
  clients.forEach((c, i) => {
    out.push(`<rect x="${left + i * step}" y="24" width="10" height="10" fill="${COLORS[c] ?? '#888'}"/><text x="${left + i * step + 14}" y="33">${c}</text>`);
  });
  for (const tick of [0, 0.5, 1, 1.5, 2, 2.5, 3].filter((t) => t <= maxRatio)) {
    out.push(`<line x1="${x(tick)}" y1="${top}" x2="${x(tick)}" y2="${height - 30}" stroke="${tick === 1 ? '#000' : '#ddd'}"/>`);
    out.push(`<text x="${x(tick)}" y="${height - 16}" text-anchor="middle">${tick}x</text>`);
  }
  names.forEach((name, gi) => {
    const y0 = top + gi * groupH + 6;
    out.push(`<text x="${left - 8}" y="${y0 + (clients.length * barH) / 2 + 4}" text-anchor="end">${name}</text>`);
    clients.forEach((c, i) => {
      const r = rel(summary[name], c);
      out.push(`<rect x="${left}" y="${y0 + i * barH}" width="${Math.max(0, x(r) - left)}" height="${barH - 1}" fill="${COLORS[c] ?? '#888'}"><title>${c}: ${Math.round(summary[name].clients[c]?.median ?? 0)} ops/s</title></rect>`);
      if (c === 'fluxor') out.push(`<text x="${x(r) + 4}" y="${y0 + i * barH + 8}">${r.toFixed(2)}x</text>`);
    });
  });
  out.push('</svg>');
  return out.join('\n');
}

function rel(s, client) {
  const js = Object.entries(s.clients).filter(([c]) => !c.startsWith('fluxor')).map(([, v]) => v.median);
  const best = Math.max(...js);
  return best > 0 ? (s.clients[client]?.median ?? 0) / best : 0;
}

module.exports = { chart };
