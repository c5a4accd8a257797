// The fleetstream dashboard: plain JavaScript over the query API, uPlot for charts.
// The API key comes from the URL (#key=…, as `fleetstream up` prints it) or is asked for once
// and kept in this browser's localStorage.
;(function () {
  'use strict'
  const $ = (id) => document.getElementById(id)
  const ONLINE_MS = 5 * 60 * 1000
  const MAX_ROWS = 200 // rows drawn per table: a fleet of 10,000 stays responsive
  let key =
    new URLSearchParams(location.hash.slice(1)).get('key') || localStorage.getItem('fleetstream.key') || ''
  let devices = []
  let chart
  const prev = {}

  const api = async (path) => {
    const res = await fetch(path, { headers: { Authorization: 'Bearer ' + key } })
    if (res.status === 401 || res.status === 403) {
      $('keyform').hidden = false
      throw new Error('API key refused')
    }
    if (!res.ok) throw new Error(path + ': HTTP ' + res.status)
    return res.json()
  }
  const text = (v) =>
    v === null || v === undefined
      ? '–'
      : typeof v === 'number'
        ? String(Math.round(v * 100) / 100)
        : String(v)
  const ago = (ms) => {
    if (!ms) return 'never'
    const s = Math.round((Date.now() - ms) / 1000)
    return s < 60 ? s + ' s ago' : s < 3600 ? Math.round(s / 60) + ' min ago' : new Date(ms).toLocaleString()
  }
  const row = (cells, cls) => {
    const tr = document.createElement('tr')
    if (cls) tr.className = cls
    for (const c of cells) {
      const td = document.createElement('td')
      if (c && typeof c === 'object') {
        td.textContent = c.text
        td.className = c.cls
      } else td.textContent = c
      tr.appendChild(td)
    }
    return tr
  }

  async function loadDevices() {
    const all = []
    let after
    for (;;) {
      const page = await api('/v1/devices?limit=5000' + (after ? '&after=' + encodeURIComponent(after) : ''))
      all.push(...page.devices)
      if (page.devices.length < 5000) break
      after = page.devices[page.devices.length - 1].deviceId
    }
    devices = all
    const now = Date.now()
    const online = devices.filter((d) => d.lastSeen && now - d.lastSeen < ONLINE_MS).length
    $('n-devices').textContent = devices.length
    $('n-online').textContent = online
    $('n-offline').textContent = devices.length - online
    renderDevices()
    const sel = $('device')
    if (sel.options.length !== Math.min(devices.length, 1000)) {
      const current = sel.value
      sel.innerHTML = ''
      for (const d of devices.slice(0, 1000)) sel.add(new Option(d.deviceId, d.deviceId))
      if (current) sel.value = current
      // First the device heard from most recently.
      const latest = [...devices].sort((a, b) => (b.lastSeen || 0) - (a.lastSeen || 0))[0]
      if (!current && latest) sel.value = latest.deviceId
      await loadChart()
    }
  }

  function renderDevices() {
    const f = $('filter').value.trim().toLowerCase()
    const shown = devices
      .filter((d) => !f || d.deviceId.toLowerCase().includes(f) || (d.site || '').toLowerCase().includes(f))
      .sort((a, b) => (b.lastSeen || 0) - (a.lastSeen || 0))
    const body = $('devices').tBodies[0]
    body.replaceChildren(
      ...shown
        .slice(0, MAX_ROWS)
        .map((d) =>
          row(
            [d.deviceId, d.site || '', d.model || '', ago(d.lastSeen)],
            d.lastSeen && Date.now() - d.lastSeen < ONLINE_MS ? 'online' : 'offline',
          ),
        ),
    )
    $('devices-note').textContent =
      shown.length > MAX_ROWS ? 'showing ' + MAX_ROWS + ' of ' + shown.length + ' (filter to narrow)' : ''
  }

  async function loadChart() {
    const device = $('device').value
    if (!device) return
    const metric = $('metric').value
    const rangeMs = Number($('range').value)
    const to = Date.now()
    const from = to - rangeMs
    const intervalMs = Math.max(1000, Math.ceil(rangeMs / 360 / 1000) * 1000)
    const s = await api(
      '/v1/devices/' +
        encodeURIComponent(device) +
        '/series?metric=' +
        encodeURIComponent(metric) +
        '&from=' +
        from +
        '&to=' +
        to +
        '&interval=' +
        intervalMs +
        '&agg=avg',
    )
    const data = [s.points.map((p) => p.t / 1000), s.points.map((p) => p.v)]
    const el = $('chart')
    el.dataset.points = String(s.points.length)
    if (chart) chart.destroy()
    chart = new uPlot(
      {
        width: Math.max(300, el.clientWidth || 440),
        height: 260,
        series: [
          {},
          {
            label: metric + ' (avg per ' + intervalMs / 1000 + ' s)',
            stroke: '#2b6cb0',
            width: 1.5,
            points: { show: s.points.length < 60 },
          },
        ],
        axes: [{}, { label: metric }],
      },
      data,
      el,
    )
  }

  async function loadBattery() {
    try {
      const s = await api('/v1/metrics/battery/summary?limit=10000')
      const rows = s.devices.sort((a, b) => (a.last ?? 101) - (b.last ?? 101)).slice(0, MAX_ROWS)
      $('battery-table').tBodies[0].replaceChildren(
        ...rows.map((d) => row([d.deviceId, text(d.last), text(d.min), text(d.max), text(d.avg)])),
      )
    } catch (err) {
      $('battery-table').tBodies[0].replaceChildren(row([String(err.message)]))
    }
  }

  async function loadHealth() {
    const s = await api('/v1/pipeline')
    const rows = Object.entries(s.counters).map(([k, v]) => {
      const rate =
        prev[k] !== undefined ? ((v - prev[k].v) / ((s.at - prev[k].at) / 1000)).toFixed(1) + '/s' : ''
      prev[k] = { v, at: s.at }
      return row([k, text(v), rate])
    })
    $('health-table').tBodies[0].replaceChildren(...rows)
  }

  function addAlert(a) {
    const body = $('alert-table').tBodies[0]
    const existing = body.querySelector('tr[data-id="' + a.alertId + '"]')
    const tr = row([
      new Date(a.updatedAt).toLocaleTimeString(),
      a.deviceId,
      a.ruleName,
      { text: a.severity, cls: 'sev-' + a.severity },
      a.state + (a.acknowledgedAt ? ' (ack)' : ''),
      a.message,
    ])
    tr.dataset.id = a.alertId
    tr.className = 'alert-row'
    if (existing) existing.replaceWith(tr)
    else body.insertBefore(tr, body.firstChild)
    while (body.rows.length > MAX_ROWS) body.deleteRow(body.rows.length - 1)
  }

  async function start() {
    localStorage.setItem('fleetstream.key', key)
    $('status').textContent = 'live'
    const recent = await api('/v1/alerts?limit=50')
    for (const a of recent.alerts.reverse()) addAlert(a)
    const es = new EventSource('/v1/alerts/stream?key=' + encodeURIComponent(key))
    es.addEventListener('alert', (e) => addAlert(JSON.parse(e.data)))
    es.onerror = () => ($('status').textContent = 'reconnecting…')
    es.onopen = () => ($('status').textContent = 'live')
    await loadDevices()
    await Promise.all([loadBattery(), loadHealth()])
    setInterval(() => loadDevices().catch(() => {}), 10000)
    setInterval(() => loadChart().catch(() => {}), 15000)
    setInterval(() => loadBattery().catch(() => {}), 60000)
    setInterval(() => loadHealth().catch(() => {}), 5000)
  }

  $('filter').addEventListener('input', renderDevices)
  for (const id of ['device', 'metric', 'range'])
    $(id).addEventListener('change', () => loadChart().catch(() => {}))
  $('keyform').addEventListener('submit', (e) => {
    e.preventDefault()
    key = $('key').value.trim()
    $('keyform').hidden = true
    start().catch((err) => ($('status').textContent = err.message))
  })
  if (!key) $('keyform').hidden = false
  else start().catch((err) => ($('status').textContent = err.message))
})()
