from ev import *
import sys
S=np.load(sys.argv[1] if len(sys.argv)>1 else 'F_0.6_3.0.npy'); np.fill_diagonal(S,-1)
t1=0.85
def components(S, idx, t):
    A=csr_matrix(S[np.ix_(idx,idx)]>=t); n,l=connected_components(A,directed=False); return n,l
def evaluate(t2s, rounds=3):
  for t2 in t2s:
    pred=np.empty(len(labels),dtype=object)
    for lab in ['yes','no']:
        idx=np.where(labels==lab)[0]; n,l=components(S,idx,t1)
        Ssub=S[np.ix_(idx,idx)]
        for _ in range(rounds):
            # component-level max similarity
            M=np.full((n,n),-1.0)
            onehot=np.zeros((len(idx),n),bool); onehot[np.arange(len(idx)),l]=True
            # max over members: for each comp pair
            rowmax=np.stack([Ssub[:,onehot[:,c]].max(1) if onehot[:,c].any() else np.full(len(idx),-1.0) for c in range(n)],1)  # item x comp
            for c in range(n): M[c]=rowmax[onehot[:,c]].max(0)
            np.fill_diagonal(M,-1)
            best=M.argmax(1); mutual=[(a,best[a]) for a in range(n) if best[best[a]]==a and a<best[a] and M[a,best[a]]>=t2]
            if not mutual: break
            # merge
            parent=np.arange(n)
            for a,b in mutual: parent[b]=a
            newl=parent[l]; u,l=np.unique(newl,return_inverse=True); n=len(u)
        for i,k in zip(idx,l): pred[i]=f'{lab}{k}'
    p,r,a,b=pairs_pr(list(pred),list(ref)); print(f't2 {t2}: P {p:.3f} R {r:.3f} groups {len(set(pred))}')
evaluate([0.8,0.75,0.7,0.65,0.6], rounds=1)
print('3 rounds'); evaluate([0.8,0.75,0.7], rounds=3)
