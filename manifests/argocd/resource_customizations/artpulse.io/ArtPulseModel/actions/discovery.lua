-- Argo CD action discovery for artpulse.io/ArtPulseModel (laid out as Argo CD's own
-- resource_customizations/<group>/<kind>/actions/; tests: action_test.yaml + testdata/).
-- Every manual action of the operator is listed (actions/<name>/action.lua sets the
-- artpulse.io/action annotation); one the operator would refuse in the current state is
-- disabled, mirroring handle_action in operator/artpulse_operator/engine/rollout.py:
--   promote  a rollout is under way (Shadowing, Progressing, Degraded) and not paused; while
--            Promoting only a blue-green switch whose verifying check has not passed yet;
--   promote-full  the same (the operator skips every remaining step and the analysis; a
--            blue-green switch it refuses while the new colour's pods are not ready);
--   abort    the same rollouts (also while paused), or a blue-green promotion whose old
--            colour is still warm (status.previous and status.scaleDownAt set);
--   retry    no rollout under way and a candidate failed (status.failedVersions), e.g.
--            after RolledBack (Degraded is still a rollout: abort or promote it);
--   pause    not paused;
--   resume   paused, and not by spec.paused (that one resumes when spec.paused is false).
-- Runs without the string/math libraries, as Argo CD runs argocd-cm action scripts.
local actions = {}

local spec = obj.spec or {}
local status = obj.status or {}
local phase = status.phase or "Pending"
local paused = phase == "Paused"
-- A paused rollout keeps the phase it will resume to in status.pausedFrom.
local effective = phase
if paused and status.pausedFrom ~= nil then
  effective = status.pausedFrom
end
local rolling = effective == "Shadowing" or effective == "Progressing" or effective == "Promoting"
  or effective == "Degraded"

local blueGreen = spec.strategy ~= nil and spec.strategy.type == "BlueGreen"
local passedChecks = 0
if status.analysis ~= nil and status.analysis.passedChecksInStep ~= nil then
  passedChecks = status.analysis.passedChecksInStep
end
-- Promoting: the stable alias move is under way and cannot be steered, except right after a
-- blue-green switch, before the check that verifies the new colour has passed.
local promotionUnderWay = effective == "Promoting" and not (blueGreen and passedChecks < 1)
local warmOldColour = blueGreen and phase == "Stable" and status.previous ~= nil
  and status.scaleDownAt ~= nil
local failedCandidate = status.failedVersions ~= nil and #status.failedVersions > 0

actions["promote"] = {
  ["disabled"] = paused or not rolling or promotionUnderWay,
  ["displayName"] = "Promote",
  ["iconClass"] = "fa fa-fw fa-forward"
}
actions["promote-full"] = {
  ["disabled"] = paused or not rolling or promotionUnderWay,
  ["displayName"] = "Promote-Full",
  ["iconClass"] = "fa fa-fw fa-fast-forward"
}
actions["abort"] = {
  ["disabled"] = not ((rolling and not promotionUnderWay) or warmOldColour),
  ["displayName"] = "Abort",
  ["iconClass"] = "fa fa-fw fa-undo"
}
actions["retry"] = {
  ["disabled"] = rolling or not failedCandidate,
  ["displayName"] = "Retry",
  ["iconClass"] = "fa fa-fw fa-redo"
}
actions["pause"] = {
  ["disabled"] = paused,
  ["displayName"] = "Pause",
  ["iconClass"] = "fa fa-fw fa-pause-circle"
}
actions["resume"] = {
  ["disabled"] = not paused or spec.paused == true,
  ["displayName"] = "Resume",
  ["iconClass"] = "fa fa-fw fa-play-circle"
}
return actions
