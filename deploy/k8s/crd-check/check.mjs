// Reads a JSON array of Kubernetes objects on stdin; validates every custom resource it knows
// against the schema generated from its CRD; prints one JSON line per object checked and exits
// 1 if any failed. Core kinds are left to kubernetes-validate (Python).
import { readFileSync } from "node:fs";
import { Rollout, AnalysisTemplate } from "@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1";
import { ExternalSecret, ClusterSecretStore, SecretStore } from "@kubernetes-models/external-secrets/external-secrets.io/v1";
import { VerticalPodAutoscaler } from "@kubernetes-models/autoscaler/autoscaling.k8s.io/v1";

const models = {
  "argoproj.io/v1alpha1/Rollout": Rollout,
  "argoproj.io/v1alpha1/AnalysisTemplate": AnalysisTemplate,
  "external-secrets.io/v1/ExternalSecret": ExternalSecret,
  "external-secrets.io/v1/ClusterSecretStore": ClusterSecretStore,
  "external-secrets.io/v1/SecretStore": SecretStore,
  "autoscaling.k8s.io/v1/VerticalPodAutoscaler": VerticalPodAutoscaler,
};

let failed = false;
for (const object of JSON.parse(readFileSync(0, "utf8"))) {
  const Model = models[`${object.apiVersion}/${object.kind}`];
  if (!Model) continue;
  const name = `${object.kind}/${object.metadata?.name}`;
  try {
    new Model(object).validate();
    console.log(JSON.stringify({ name, valid: true }));
  } catch (error) {
    failed = true;
    console.log(JSON.stringify({ name, valid: false, error: String(error.message ?? error) }));
  }
}
process.exit(failed ? 1 : 0);
