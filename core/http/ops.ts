import Fastify from 'fastify'
import type { Registry } from 'prom-client'
import type { Logger } from '../logging/logger'

/** A process's operations endpoint: Prometheus `/metrics`, `/healthz` and `/readyz`. */
export interface OpsServer {
  port: number
  close(): Promise<void>
}

/** Starts the operations endpoint of a process that has no HTTP server of its own (jobs, sinks). */
export async function startOpsServer(o: {
  host: string
  port: number
  registry: Registry
  ready: () => boolean
  logger: Logger
}): Promise<OpsServer> {
  const app = Fastify({ logger: false })
  app.get('/metrics', async (_req, reply) => {
    reply.header('Content-Type', o.registry.contentType)
    return o.registry.metrics()
  })
  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (_req, reply) =>
    o.ready() ? { status: 'ready' } : reply.code(503).send({ status: 'not ready' }),
  )
  await app.listen({ port: o.port, host: o.host })
  const address = app.server.address()
  const port = typeof address === 'object' && address ? address.port : o.port
  o.logger.info('metrics endpoint listening', { host: o.host, port })
  return { port, close: () => app.close() }
}
