-- Argo CD action "resume" for artpulse.io/ArtPulseModel:
--   continue a rollout paused by the pause action (one paused by spec.paused resumes
--   when spec.paused is set back to false).
-- It only sets the artpulse.io/action annotation: the operator acts on it, records the outcome
-- in status.lastAction and removes the annotation. Argo CD patches the live object with the
-- object this returns.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["artpulse.io/action"] = "resume"
return obj
