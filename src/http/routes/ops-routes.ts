/** Liveness, readiness and metrics, for load balancers, Kubernetes and Prometheus. */
import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { AppError } from '../../shared/errors.js';
import type { AppDeps } from '../app-deps.js';
import { ProblemSchema } from '../schemas.js';

const Status = Type.Object({ status: Type.String() });

export function opsRoutes(app: FastifyInstance, deps: AppDeps): void {
  app.get('/healthz', {
    config: { doc: { operationId: 'health', summary: 'Liveness: the process is up', tag: 'operations', auth: false, responses: { 200: { description: 'Up', schema: Status } } } },
  }, () => ({ status: 'ok' }));

  app.get('/readyz', {
    config: {
      doc: {
        operationId: 'readiness', summary: 'Readiness: the dependencies this role needs answer; red while draining', tag: 'operations', auth: false,
        responses: {
          200: { description: 'Ready', schema: Status },
          503: { description: 'Not ready: draining or a dependency is down', contentType: 'application/problem+json', schema: ProblemSchema, headers: ['Retry-After'] },
        },
      },
    },
  }, async () => {
    if (deps.readiness.draining) throw new AppError('shutting_down', { headers: { 'Retry-After': '5' } });
    try {
      await deps.readiness.check();
    } catch (error) {
      throw new AppError('dependency_unavailable', { detail: 'The database does not answer', headers: { 'Retry-After': '5' }, cause: error });
    }
    return { status: 'ready' };
  });

  app.get('/metrics', {
    config: {
      doc: {
        operationId: 'metrics', summary: 'Prometheus metrics', tag: 'operations', auth: false,
        responses: { 200: { description: 'Prometheus text format', contentType: 'text/plain', schema: Type.String() } },
      },
    },
  }, async (_request, reply) => {
    const registry = deps.metrics.registry;
    return reply.type(registry.contentType).send(await registry.metrics());
  });
}
