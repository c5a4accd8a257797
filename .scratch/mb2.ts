import { Packr } from 'msgpackr'
const rules: Record<string, unknown> = {}
for (let i = 0; i < 100; i++) {
  if (i % 6 === 4) rules[`r${i}`] = { samples: Array.from({ length: 20 }, (_, k) => (k % 25 === 1 ? 99 : 50)) }
  else if (i % 6 === 3) rules[`r${i}`] = { last: { ts: 1798000000000 + i, value: 50 } }
}
const obj = { tenant: null, rules }
const p = new Packr({ useRecords: false })
const j = Buffer.from(JSON.stringify(obj)); const m = p.pack(obj)
console.log('json bytes', j.length, 'msgpack bytes', m.length)
for (let rep = 0; rep < 3; rep++) {
  let t = process.hrtime.bigint()
  for (let i = 0; i < 50000; i++) Buffer.from(JSON.stringify(obj))
  const tj = Number(process.hrtime.bigint() - t) / 1e6
  t = process.hrtime.bigint()
  for (let i = 0; i < 50000; i++) p.pack(obj)
  const tm = Number(process.hrtime.bigint() - t) / 1e6
  console.log('50k: json ms', tj.toFixed(0), 'msgpackr ms', tm.toFixed(0))
}
