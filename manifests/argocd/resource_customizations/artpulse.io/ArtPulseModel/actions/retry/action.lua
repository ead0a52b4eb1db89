-- Argo CD action "retry" for artpulse.io/ArtPulseModel:
--   roll out again the candidate that failed (status.failedVersions).
-- It only sets the artpulse.io/action annotation: the operator acts on it, records the outcome
-- in status.lastAction and removes the annotation. Argo CD patches the live object with the
-- object this returns.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["artpulse.io/action"] = "retry"
return obj
