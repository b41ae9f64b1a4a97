// R1 baseline: no fault. The client routes by slot and pipelines; every op must be ok.
'use strict';

const R1 = {
  id: 'R1',
  summary: (f) => `N ${f.ops}, fail/info ${f.fail}/${f.info}, p99 ${f.p99Ms} ms`,
  title: 'baseline',
  fault: 'no fault',
  must: 'route by slot, pipeline/multiplex',
  passFigure: 'N ≥ 40,000; all global conditions; 0 fail/info',
  quick: true,
  tls: true,
  async run(ctx) {
    await ctx.at(ctx.quick ? 10000 : 20000);
  },
  check(ctx, f) {
    if (f.ops < 40000) ctx.fail(`N = ${f.ops} ops (must be ≥ 40,000)`);
    if (f.fail || f.info) ctx.fail(`${f.fail} fail / ${f.info} info (must be 0)`);
  },
};

module.exports = [R1];
