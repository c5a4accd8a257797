/**
 * Writes k8s/base/*.yaml (a kustomize base) from one table of fleetstream's roles, so that every
 * role gets the same shape: Deployment (probes, resources, non-root), Service where it listens,
 * PodDisruptionBudget, HorizontalPodAutoscaler, NetworkPolicy. `npx tsx scripts/gen-k8s.ts`;
 * test/k8s.test.ts checks the files are current and valid against the Kubernetes schemas.
 */
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { stringify } from 'yaml'

const NS = 'fleetstream'
const IMAGE = 'fleetstream:latest'

interface Role {
  name: string
  args: string[]
  /** The port of /metrics, /healthz and /readyz. */
  opsPort: number
  /** Ports clients reach through a Service (name → port). */
  servicePorts?: Record<string, number>
  /** Who may connect besides Prometheus: 'world' (devices, users) or pod labels. */
  ingressFrom?: 'world'
  /** Pods this role talks to (app.kubernetes.io/name → port); DNS is always allowed. */
  egress: Record<string, number>
  /** Scale on consumer lag (jobs, sinks) or on CPU (bridge, API). */
  scale: { on: 'lag'; group: string } | { on: 'cpu' }
  resources: { cpu: string; memory: string; cpuLimit: string; memoryLimit: string }
  env?: Record<string, string>
  /** Egress to any address on these ports (webhooks, external MQTT brokers). */
  egressAnywhere?: number[]
}

const small = { cpu: '250m', memory: '256Mi', cpuLimit: '1', memoryLimit: '512Mi' }
const medium = { cpu: '500m', memory: '512Mi', cpuLimit: '2', memoryLimit: '1Gi' }

export const ROLES: Role[] = [
  {
    name: 'bridge',
    args: ['bridge'],
    opsPort: 8080,
    servicePorts: { mqtt: 1883, http: 8080 },
    ingressFrom: 'world',
    egress: { kafka: 9092, postgres: 5432 },
    scale: { on: 'cpu' },
    resources: medium,
    env: { FLEETSTREAM_BRIDGE__AUTH__STORE: 'postgres' },
  },
  ...['enrich', 'rollup', 'rules'].map((job): Role => ({
    name: `job-${job}`,
    args: ['job', job],
    opsPort: 9464,
    egress: { kafka: 9092 },
    scale: { on: 'lag', group: `fleetstream-${job}` },
    resources: medium,
  })),
  {
    name: 'alerts',
    args: ['alerts'],
    opsPort: 9465,
    egress: { kafka: 9092 },
    egressAnywhere: [443, 8883],
    scale: { on: 'lag', group: 'fleetstream-alerts-log' },
    resources: small,
  },
  {
    name: 'sink-cratedb',
    args: ['sink', 'cratedb'],
    opsPort: 9466,
    egress: { kafka: 9092, cratedb: 4200 },
    scale: { on: 'lag', group: 'fleetstream-sink-cratedb' },
    resources: medium,
  },
  {
    name: 'sink-cassandra',
    args: ['sink', 'cassandra'],
    opsPort: 9466,
    egress: { kafka: 9092, cassandra: 9042 },
    scale: { on: 'lag', group: 'fleetstream-sink-cassandra' },
    resources: medium,
  },
  {
    name: 'api',
    args: ['api'],
    opsPort: 8090,
    servicePorts: { http: 8090 },
    ingressFrom: 'world',
    egress: { kafka: 9092, cratedb: 4200 },
    scale: { on: 'cpu' },
    resources: small,
    env: { FLEETSTREAM_API__STORE: 'cratedb' },
  },
]

const labels = (name: string) => ({
  'app.kubernetes.io/name': name,
  'app.kubernetes.io/part-of': 'fleetstream',
})
const meta = (name: string) => ({ name, namespace: NS, labels: labels(name) })

function deployment(r: Role) {
  const probe = (p: string) => ({
    httpGet: { path: p, port: r.opsPort },
    periodSeconds: 10,
    timeoutSeconds: 3,
  })
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(r.name),
    spec: {
      replicas: r.name === 'bridge' || r.name === 'api' ? 2 : 1,
      selector: { matchLabels: labels(r.name) },
      template: {
        metadata: {
          labels: labels(r.name),
          annotations: {
            'prometheus.io/scrape': 'true',
            'prometheus.io/port': String(r.opsPort),
            'prometheus.io/path': '/metrics',
          },
        },
        spec: {
          securityContext: { runAsNonRoot: true, runAsUser: 1000, fsGroup: 1000 },
          terminationGracePeriodSeconds: 60,
          containers: [
            {
              name: 'fleetstream',
              image: IMAGE,
              args: r.args,
              ports: [...new Set([r.opsPort, ...Object.values(r.servicePorts ?? {})])].map(
                (containerPort) => ({ containerPort }),
              ),
              envFrom: [
                { configMapRef: { name: 'fleetstream-config' } },
                { secretRef: { name: 'fleetstream-secrets' } },
              ],
              env: Object.entries(r.env ?? {}).map(([name, value]) => ({ name, value })),
              livenessProbe: { ...probe('/healthz'), failureThreshold: 6 },
              readinessProbe: { ...probe('/readyz'), failureThreshold: 3 },
              resources: {
                requests: { cpu: r.resources.cpu, memory: r.resources.memory },
                limits: { cpu: r.resources.cpuLimit, memory: r.resources.memoryLimit },
              },
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'] },
              },
              volumeMounts: [{ name: 'data', mountPath: '/app/data' }],
            },
          ],
          volumes: [{ name: 'data', emptyDir: {} }],
        },
      },
    },
  }
}

function service(r: Role) {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(r.name),
    spec: {
      type: r.ingressFrom === 'world' ? 'LoadBalancer' : 'ClusterIP',
      selector: labels(r.name),
      ports: Object.entries(r.servicePorts ?? {}).map(([name, port]) => ({ name, port, targetPort: port })),
    },
  }
}

function pdb(r: Role) {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: meta(r.name),
    spec: {
      selector: { matchLabels: labels(r.name) },
      ...(r.servicePorts ? { minAvailable: 1 } : { maxUnavailable: 1 }),
    },
  }
}

function hpa(r: Role) {
  const metric =
    r.scale.on === 'lag'
      ? {
          // Consumer lag per group, exported by a Kafka exporter and served by the Prometheus adapter.
          type: 'External',
          external: {
            metric: {
              name: 'kafka_consumergroup_lag',
              selector: { matchLabels: { consumergroup: r.scale.group } },
            },
            target: { type: 'AverageValue', averageValue: '10000' },
          },
        }
      : {
          type: 'Resource',
          resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } },
        }
  return {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: meta(r.name),
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: r.name },
      // Jobs and sinks gain nothing past the topic's 6 partitions.
      minReplicas: r.servicePorts ? 2 : 1,
      maxReplicas: r.scale.on === 'lag' ? 6 : 10,
      metrics: [metric],
    },
  }
}

const dns = {
  to: [{ namespaceSelector: {}, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
  ports: [
    { protocol: 'UDP', port: 53 },
    { protocol: 'TCP', port: 53 },
  ],
}

function networkPolicy(r: Role) {
  const prometheus = {
    from: [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } } }],
    ports: [{ protocol: 'TCP', port: r.opsPort }],
  }
  const world =
    r.ingressFrom === 'world'
      ? [{ ports: Object.values(r.servicePorts ?? {}).map((port) => ({ protocol: 'TCP', port })) }]
      : []
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: meta(r.name),
    spec: {
      podSelector: { matchLabels: labels(r.name) },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [prometheus, ...world],
      egress: [
        dns,
        ...Object.entries(r.egress).map(([name, port]) => ({
          to: [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': name } } }],
          ports: [{ protocol: 'TCP', port }],
        })),
        ...(r.egressAnywhere
          ? [
              {
                to: [{ ipBlock: { cidr: '0.0.0.0/0' } }],
                ports: r.egressAnywhere.map((port) => ({ protocol: 'TCP', port })),
              },
            ]
          : []),
      ],
    },
  }
}

/** The stores and Kafka accept only their clients; Grafana reaches the stores. */
function neighbourPolicies() {
  const allow = (name: string, port: number, from: string[], policy = `${name}-clients`) => ({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: policy, namespace: NS, labels: { 'app.kubernetes.io/part-of': 'fleetstream' } },
    spec: {
      podSelector: { matchLabels: { 'app.kubernetes.io/name': name } },
      policyTypes: ['Ingress'],
      ingress: [
        {
          from: from.map((f) => ({ podSelector: { matchLabels: { 'app.kubernetes.io/name': f } } })),
          ports: [{ protocol: 'TCP', port }],
        },
      ],
    },
  })
  const users = (store: string) => ROLES.filter((r) => store in r.egress).map((r) => r.name)
  return [
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: {
        name: 'default-deny',
        namespace: NS,
        labels: { 'app.kubernetes.io/part-of': 'fleetstream' },
      },
      spec: { podSelector: {}, policyTypes: ['Ingress', 'Egress'] },
    },
    allow('kafka', 9092, users('kafka')),
    // CrateDB: its HTTP endpoint for the sinks and the API, its PostgreSQL port for Grafana.
    allow('cratedb', 4200, [...users('cratedb'), 'grafana'], 'cratedb-http-clients'),
    allow('cratedb', 5432, ['grafana'], 'cratedb-sql-clients'),
    allow('cassandra', 9042, [...users('cassandra'), 'grafana']),
    allow('postgres', 5432, [...users('postgres'), 'grafana']),
  ]
}

const config = {
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: meta('fleetstream-config'),
  data: {
    FLEETSTREAM_KAFKA__BROKERS: 'kafka:9092',
    FLEETSTREAM_SINKS__CRATEDB__URL: 'http://cratedb:4200',
    FLEETSTREAM_SINKS__CASSANDRA__CONTACT_POINTS: 'cassandra:9042',
    FLEETSTREAM_LOG__LEVEL: 'info',
  },
}
const secrets = {
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: meta('fleetstream-secrets'),
  type: 'Opaque',
  // Placeholders: an overlay or an external secret manager provides the real values.
  stringData: {
    FLEETSTREAM_BRIDGE__AUTH__POSTGRES_URL: 'postgres://fleetstream:CHANGE-ME@postgres:5432/fleetstream',
    FLEETSTREAM_SINKS__POSTGRES__URL: 'postgres://fleetstream:CHANGE-ME@postgres:5432/fleetstream',
  },
}
const namespace = {
  apiVersion: 'v1',
  kind: 'Namespace',
  metadata: { name: NS, labels: { 'app.kubernetes.io/part-of': 'fleetstream' } },
}

/** The base's files and their documents. */
export function k8sBase(): Record<string, object[]> {
  const files: Record<string, object[]> = {
    'namespace.yaml': [namespace],
    'config.yaml': [config, secrets],
    'network-policies.yaml': neighbourPolicies(),
  }
  for (const r of ROLES)
    files[`${r.name}.yaml`] = [
      deployment(r),
      ...(r.servicePorts ? [service(r)] : []),
      pdb(r),
      hpa(r),
      networkPolicy(r),
    ]
  files['kustomization.yaml'] = [
    {
      apiVersion: 'kustomize.config.k8s.io/v1beta1',
      kind: 'Kustomization',
      namespace: NS,
      resources: Object.keys(files).sort(),
    },
  ]
  return files
}

export const render = (docs: object[]) =>
  `# Generated by scripts/gen-k8s.ts — edit the generator, not this file.\n${docs.map((d) => stringify(d)).join('---\n')}`

if (require.main === module) {
  const dir = path.resolve(__dirname, '../k8s/base')
  for (const [file, docs] of Object.entries(k8sBase())) writeFileSync(path.join(dir, file), render(docs))
}
