-- Argo CD action "abort" for artpulse.io/ArtPulseModel:
--   roll the candidate back now (blue-green, within scaleDownDelay after a promotion:
--   switch back to the previous colour).
-- It only sets the artpulse.io/action annotation: the operator acts on it, records the outcome
-- in status.lastAction and removes the annotation. Argo CD patches the live object with the
-- object this returns.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["artpulse.io/action"] = "abort"
return obj
