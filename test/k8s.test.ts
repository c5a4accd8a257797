import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { Namespace, ConfigMap, Secret, Service } from 'kubernetes-models/v1'
import { Deployment } from 'kubernetes-models/apps/v1'
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2'
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1'
import { parseAllDocuments } from 'yaml'
import { k8sBase, render, ROLES } from '../scripts/gen-k8s'

const BASE = path.resolve(__dirname, '../k8s/base')
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = Record<string, any>
const docs: Doc[] = readdirSync(BASE)
  .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
  .flatMap((f) => parseAllDocuments(readFileSync(path.join(BASE, f), 'utf8')).map((d) => d.toJSON() as Doc))
const of = (kind: string) => docs.filter((d) => d.kind === kind)

const MODELS: Record<string, new (d: Doc) => { validate(): void }> = {
  Namespace,
  ConfigMap,
  Secret,
  Service,
  Deployment,
  HorizontalPodAutoscaler,
  NetworkPolicy,
  PodDisruptionBudget,
}

describe('deploy > k8s manifests', () => {
  it('are what scripts/gen-k8s.ts writes (regenerate after changing it)', () => {
    for (const [file, d] of Object.entries(k8sBase()))
      expect([file, readFileSync(path.join(BASE, file), 'utf8')]).toEqual([file, render(d)])
  })

  it('validate against the Kubernetes API schemas (kubernetes-models)', () => {
    expect(docs.length).toBeGreaterThan(30)
    for (const d of docs) {
      const Model = MODELS[d.kind as string]
      expect([d.kind, Model !== undefined]).toEqual([d.kind, true])
      expect(() => new Model!(d).validate()).not.toThrow()
    }
    // A control: the schemas do refuse a wrong manifest.
    const broken = structuredClone(of('Deployment')[0]!)
    broken.spec.template.spec.containers[0].ports[0].containerPort = 'http'
    expect(() => new Deployment(broken).validate()).toThrow(/containerPort/)
  })

  it('give every role a Deployment with /healthz and /readyz probes, resources, a non-root user; a PDB; an HPA', () => {
    for (const r of ROLES) {
      const dep = of('Deployment').find((d) => d.metadata.name === r.name)!
      const c = dep.spec.template.spec.containers[0]
      expect([r.name, c.args]).toEqual([r.name, r.args])
      expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: r.opsPort })
      expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: r.opsPort })
      expect(c.resources.requests.cpu).toBeDefined()
      expect(c.resources.limits.memory).toBeDefined()
      expect(dep.spec.template.spec.securityContext.runAsNonRoot).toBe(true)
      expect(of('PodDisruptionBudget').some((p) => p.metadata.name === r.name)).toBe(true)
      const hpa = of('HorizontalPodAutoscaler').find((h) => h.metadata.name === r.name)!
      // Jobs and sinks scale on consumer lag; the front doors on CPU.
      const kind = r.name.startsWith('job-') || r.name.startsWith('sink-') ? 'External' : undefined
      if (kind) expect(hpa.spec.metrics[0].external.metric.name).toBe('kafka_consumergroup_lag')
    }
  })

  it('let each component talk only to its neighbours', () => {
    const policies = of('NetworkPolicy')
    const deny = policies.find((p) => p.metadata.name === 'default-deny')!
    expect(deny.spec).toEqual({ podSelector: {}, policyTypes: ['Ingress', 'Egress'] })
    const egressTo = (name: string) =>
      policies
        .find((p) => p.metadata.name === name)!
        .spec.egress.flatMap((e: Doc) =>
          (e.to ?? []).map((t: Doc) => t.podSelector?.matchLabels?.['app.kubernetes.io/name']),
        )
        .filter(Boolean)
    // devices → bridge; bridge → Kafka (+ its credentials store); jobs → Kafka only; sinks → Kafka and their store.
    expect(egressTo('bridge').sort()).toEqual(
      ['kafka', 'kube-dns', 'postgres']
        .sort()
        .filter((x) => x !== 'kube-dns')
        .concat()
        .sort(),
    )
    expect(egressTo('job-rollup')).toEqual(['kafka'])
    expect(egressTo('sink-cassandra').sort()).toEqual(['cassandra', 'kafka'])
    const bridgeIn = policies.find((p) => p.metadata.name === 'bridge')!.spec.ingress
    expect(bridgeIn.some((i: Doc) => !i.from && i.ports.some((p: Doc) => p.port === 1883))).toBe(true)
    const jobIn = policies.find((p) => p.metadata.name === 'job-rules')!.spec.ingress
    expect(jobIn).toHaveLength(1) // Prometheus only
    // Grafana → stores; Kafka accepts only fleetstream's roles.
    const clients = (name: string) =>
      policies
        .find((p) => p.metadata.name === name)!
        .spec.ingress[0].from.map((f: Doc) => f.podSelector.matchLabels['app.kubernetes.io/name'])
    expect(clients('cratedb-sql-clients')).toEqual(['grafana'])
    expect(clients('cassandra-clients')).toContain('grafana')
    expect(clients('kafka-clients')).not.toContain('grafana')
  })
})
