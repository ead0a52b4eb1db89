-- Argo CD action "promote" for artpulse.io/ArtPulseModel:
--   advance one canary step, end the shadow phase, switch the blue-green colours,
--   or override a Degraded rollout.
-- It only sets the artpulse.io/action annotation: the operator acts on it, records the outcome
-- in status.lastAction and removes the annotation. Argo CD patches the live object with the
-- object this returns.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["artpulse.io/action"] = "promote"
return obj
