-- Argo CD action "promote-full" for artpulse.io/ArtPulseModel, as Argo Rollouts' own:
--   promote now, skipping the remaining canary steps, the shadow phase, the analysis and the
--   confirmPromotion webhook (a blue-green switch still waits for the new colour's pods: the
--   operator refuses the action until they are ready, in status.lastAction).
-- It only sets the artpulse.io/action annotation: the operator acts on it, records the outcome
-- in status.lastAction and removes the annotation. Argo CD patches the live object with the
-- object this returns.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["artpulse.io/action"] = "promote-full"
return obj
