/**
 * The Kubernetes manifests: every overlay renders with `kubectl kustomize`, every object is
 * valid against the Kubernetes API schemas (the kubernetes-models package), and the rendered
 * installation has what the operations guide promises: probes, limits and a locked-down
 * security context on every pod; one image for every role and the migration Job; an HPA and a
 * PDB for every role; zone spread; a drain that ends before the kubelet kills; secrets as files;
 * NetworkPolicies around every pod.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { commandTestOptions } from '../helpers/deploy-files.js';

type Labels = Record<string, string>;
interface K8sObject<Spec = unknown> {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Labels };
  spec: Spec;
  data?: Labels;
  stringData?: Labels;
}
/** The parts of the rendered objects these checks read (the schemas vouch for the rest). */
interface Probe {
  httpGet?: { path: string };
  periodSeconds: number;
  failureThreshold: number;
}
interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: { name: string; value?: string }[];
  resources?: Partial<Record<'requests' | 'limits', Partial<Record<'cpu' | 'memory', string>>>>;
  securityContext: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean; capabilities?: { drop?: string[] } };
  volumeMounts: { name: string; mountPath: string }[];
  startupProbe?: Probe;
  livenessProbe?: Probe;
  readinessProbe: Probe;
}
interface Workload {
  strategy?: { rollingUpdate: { maxUnavailable: number | string } };
  template: {
    metadata: { labels: Labels };
    spec: {
      automountServiceAccountToken?: boolean;
      securityContext: { runAsNonRoot?: boolean; seccompProfile?: { type: string } };
      terminationGracePeriodSeconds: number;
      containers: Container[];
      topologySpreadConstraints?: { topologyKey: string; labelSelector: { matchLabels: Labels } }[];
    };
  };
}
interface Hpa {
  scaleTargetRef: { name: string };
  minReplicas: number;
  maxReplicas: number;
  metrics: { type: string; resource?: { name: string }; external?: { metric: { name: string } } }[];
}
interface NetworkPolicy {
  podSelector: { matchLabels?: Labels; matchExpressions?: { key: string; values: string[] }[] };
  policyTypes: string[];
  ingress?: { from?: { namespaceSelector?: { matchLabels?: Labels } }[] }[];
}
interface Ingress {
  rules: { http: { paths: { path: string; backend: { service: { name: string } } }[] } }[];
}

const OVERLAYS = ['deploy/k8s/overlays/small', 'deploy/k8s/overlays/large'];
const ROLES = ['redirect', 'api', 'worker'];
const SECRETS = ['ADMIN_API_KEY', 'DATABASE_URL', 'REDIS_URL', 'AMQP_URL'];

function render(dir: string): K8sObject[] {
  const result = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
  assert.equal(result.status, 0, `kubectl kustomize ${dir}: ${result.stderr}`);
  return parseAllDocuments(result.stdout).map((document) => document.toJS() as K8sObject);
}

/** Validates with the model class of the object's apiVersion and kind; returns the error, if any. */
async function schemaError(object: K8sObject): Promise<string | null> {
  const models = (await import(`kubernetes-models/${object.apiVersion}`)) as Record<string, new (data: unknown) => { validate(): void }>;
  const Model = models[object.kind];
  if (Model === undefined) return `no schema for ${object.apiVersion} ${object.kind}`;
  try {
    new Model(object).validate();
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}

function matches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([key, value]) => labels[key] === value);
}

const kubectl = commandTestOptions('kubectl', ['version', '--client']);

describe('Kubernetes manifests', kubectl, () => {
  test('the autoscaling adapter configuration renders and is valid', async () => {
    for (const object of render('deploy/k8s/autoscaling')) assert.equal(await schemaError(object), null, `${object.kind} ${object.metadata.name}`);
  });

  for (const overlay of OVERLAYS) {
    describe(overlay, () => {
      const objects = render(overlay);
      const of = <Spec>(kind: string): K8sObject<Spec>[] => objects.filter((object) => object.kind === kind) as K8sObject<Spec>[];
      const deployments = of<Workload>('Deployment');
      const jobs = of<Workload>('Job');
      const roleOf = (workload: K8sObject<Workload>): string | undefined => workload.spec.template.spec.containers[0]?.env?.find((e) => e.name === 'ROLE')?.value;
      const config = of('ConfigMap').find((object) => object.metadata.name === 'shunt-config')?.data ?? {};

      test('every object is valid against the Kubernetes API schemas, in the shunt namespace', async () => {
        assert.ok(objects.length >= 20, `${objects.length} objects`);
        for (const object of objects) {
          assert.equal(await schemaError(object), null, `${object.kind} ${object.metadata.name}`);
          assert.equal(object.metadata.namespace, 'shunt', `${object.kind} ${object.metadata.name} namespace`);
        }
      });

      test('one Deployment per role, all from one image, which the migration Job runs first', () => {
        assert.deepEqual(deployments.map(roleOf).sort(), [...ROLES].sort());
        const job = jobs.find((object) => object.metadata.name === 'shunt-migrate');
        assert.ok(job !== undefined, 'migration Job');
        assert.deepEqual(job.spec.template.spec.containers[0]?.args, ['migrate']);
        const images = new Set([...deployments, job].map((object) => object.spec.template.spec.containers[0]?.image));
        assert.equal(images.size, 1, [...images].join(', '));
      });

      test('every pod has probes, requests and limits, and a locked-down security context', () => {
        for (const object of [...deployments, ...jobs]) {
          const pod = object.spec.template.spec;
          assert.equal(pod.automountServiceAccountToken, false, object.metadata.name);
          assert.equal(pod.securityContext.runAsNonRoot, true, object.metadata.name);
          assert.equal(pod.securityContext.seccompProfile?.type, 'RuntimeDefault', object.metadata.name);
          for (const container of pod.containers) {
            const where = `${object.metadata.name}/${container.name}`;
            for (const kind of ['requests', 'limits'] as const) for (const resource of ['cpu', 'memory'] as const) assert.ok(container.resources?.[kind]?.[resource] !== undefined, `${where} ${kind}.${resource}`);
            assert.equal(container.securityContext.readOnlyRootFilesystem, true, where);
            assert.equal(container.securityContext.allowPrivilegeEscalation, false, where);
            assert.deepEqual(container.securityContext.capabilities?.drop, ['ALL'], where);
            assert.ok(!(container.env ?? []).some((e) => SECRETS.includes(e.name)), `${where}: secrets come as files`);
            assert.ok(container.volumeMounts.some((m) => m.mountPath === config.DATA_DIR), `${where}: DATA_DIR is a volume`);
          }
        }
        for (const deployment of deployments) {
          const container = deployment.spec.template.spec.containers[0];
          const where = deployment.metadata.name;
          assert.ok(container !== undefined, where);
          assert.equal(container.startupProbe?.httpGet?.path, '/healthz', `${where} startup probe`);
          assert.equal(container.livenessProbe?.httpGet?.path, '/healthz', `${where} liveness probe`);
          assert.equal(container.readinessProbe?.httpGet?.path, '/readyz', `${where} readiness probe`);
          assert.equal(deployment.spec.strategy?.rollingUpdate.maxUnavailable, 0, `${where} keeps every replica while rolling`);
        }
      });

      test('secrets reach Shunt as files from the mounted Secret', () => {
        const secret = of('Secret').find((object) => object.metadata.name === 'shunt-secrets');
        assert.ok(secret !== undefined);
        const mount = deployments[0]?.spec.template.spec.containers[0]?.volumeMounts.find((m) => m.name === 'secrets')?.mountPath ?? '(none)';
        for (const name of SECRETS) {
          const file = config[`${name}_FILE`] ?? '';
          assert.ok(file.startsWith(`${mount}/`), `${name}_FILE=${file}`);
          assert.ok(Object.keys(secret.stringData ?? {}).includes(file.slice(mount.length + 1)), `${file} is a key of the Secret`);
        }
      });

      test('a rolling update drops no request: readiness turns red before the drain, which ends before SIGKILL', () => {
        const delay = Number(config.SHUTDOWN_DELAY_MS);
        const timeout = Number(config.SHUTDOWN_TIMEOUT_MS);
        assert.equal(config.WORKERS, '1');
        for (const deployment of deployments) {
          const pod = deployment.spec.template.spec;
          const readiness = pod.containers[0]?.readinessProbe;
          assert.ok(readiness !== undefined);
          assert.ok(delay > readiness.periodSeconds * readiness.failureThreshold * 1000, `${deployment.metadata.name}: SHUTDOWN_DELAY_MS ${delay} vs readiness probe`);
          assert.ok(timeout > delay, 'SHUTDOWN_TIMEOUT_MS covers the delay');
          assert.ok(pod.terminationGracePeriodSeconds * 1000 > timeout, `${deployment.metadata.name}: grace period above SHUTDOWN_TIMEOUT_MS`);
        }
      });

      test('every role has an HPA (CPU for redirect and api, queue depth for worker), a PDB and zone spread', () => {
        for (const deployment of deployments) {
          const name = deployment.metadata.name;
          const labels = deployment.spec.template.metadata.labels;
          const hpa = of<Hpa>('HorizontalPodAutoscaler').find((h) => h.spec.scaleTargetRef.name === name);
          assert.ok(hpa !== undefined && hpa.apiVersion === 'autoscaling/v2', `${name} HPA`);
          assert.ok(hpa.spec.minReplicas >= 1 && hpa.spec.maxReplicas > hpa.spec.minReplicas, `${name} HPA range`);
          const metrics = hpa.spec.metrics;
          if (roleOf(deployment) === 'worker') {
            assert.ok(metrics.some((m) => m.type === 'External' && m.external?.metric.name === 'shunt_click_queue_depth'), `${name} scales on queue depth`);
          } else {
            assert.ok(metrics.some((m) => m.type === 'Resource' && m.resource?.name === 'cpu'), `${name} scales on CPU`);
          }
          assert.ok(of<{ selector: { matchLabels: Labels } }>('PodDisruptionBudget').some((p) => matches(p.spec.selector.matchLabels, labels) && matches(labels, p.spec.selector.matchLabels)), `${name} PDB`);
          const spread = deployment.spec.template.spec.topologySpreadConstraints ?? [];
          assert.ok(spread.some((c) => c.topologyKey === 'topology.kubernetes.io/zone' && matches(c.labelSelector.matchLabels, labels)), `${name} zone spread`);
        }
      });

      test('NetworkPolicies fence every pod in and out, and let the ingress controller reach only the serving roles', () => {
        const policies = of<NetworkPolicy>('NetworkPolicy');
        for (const deployment of [...deployments, ...jobs]) {
          const labels = deployment.spec.template.metadata.labels;
          const selecting = policies.filter((p) => matches(p.spec.podSelector.matchLabels ?? {}, labels) && (p.spec.podSelector.matchExpressions ?? []).every((e) => e.values.includes(labels[e.key] ?? '')));
          const types = new Set(selecting.flatMap((p) => p.spec.policyTypes));
          assert.ok(types.has('Ingress') && types.has('Egress'), `${deployment.metadata.name} is fenced both ways`);
          const fromIngress = selecting.some((p) => (p.spec.ingress ?? []).some((rule) => (rule.from ?? []).some((peer) => peer.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === 'ingress-nginx')));
          assert.equal(fromIngress, ['redirect', 'api'].includes(labels['app.kubernetes.io/component'] ?? ''), `${deployment.metadata.name} reachable from the ingress controller`);
        }
      });

      test('the Ingress sends the API to the api role and everything else to the redirect role', () => {
        const [ingress] = of<Ingress>('Ingress');
        const paths = ingress?.spec.rules[0]?.http.paths ?? [];
        assert.deepEqual(paths.map((p) => [p.path, p.backend.service.name]), [['/api/', 'shunt-api'], ['/', 'shunt-redirect']]);
        const services = new Set(of('Service').map((s) => s.metadata.name));
        for (const p of paths) assert.ok(services.has(p.backend.service.name), p.backend.service.name);
      });
    });
  }
});
