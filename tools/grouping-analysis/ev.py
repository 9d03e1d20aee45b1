import numpy as np, time
from scipy import ndimage as ndi
from scipy.sparse.csgraph import connected_components
from scipy.sparse import csr_matrix
d=np.load('data.npz'); ref=d['ref']; labels=d['labels']; T=d['thumb'].reshape(-1,32,32); P=d['pix'].reshape(-1,64,64)
def pairs_pr(pred, refg):
    from collections import Counter
    c2=lambda c: c*(c-1)//2
    a=sum(c2(v) for v in Counter(pred).values()); b=sum(c2(v) for v in Counter(refg).values()); ab=sum(c2(v) for v in Counter(zip(pred,refg)).values())
    return ab/max(a,1), ab/max(b,1), a, b
def rot(imgs, deg, mirror):
    out=imgs[:, :, ::-1] if mirror else imgs
    if deg==0: return out.copy()
    return ndi.rotate(out, deg, axes=(1,2), reshape=False, order=1, mode='constant', cval=0.0)
def std(v):
    v=v-v.mean(1,keepdims=True); n=np.linalg.norm(v,axis=1,keepdims=True); return v/np.maximum(n,1e-12)
def maxsim(desc_fn, imgs, angles=(0,5,-5,10,-10), mirror=True):
    base=std(desc_fn(imgs).reshape(len(imgs),-1))
    S=np.full((len(imgs),len(imgs)),-1.0,dtype=np.float32)
    for m in ([False,True] if mirror else [False]):
        for a in angles:
            v=std(desc_fn(rot(imgs,a,m)).reshape(len(imgs),-1))
            S=np.maximum(S, base@v.T)
    return np.maximum(S,S.T)
def cc_at(Ss, t):
    pred=np.empty(len(labels),dtype=object)
    for lab,(idx,S) in Ss.items():
        A=csr_matrix(S>=t); n,l=connected_components(A,directed=False)
        for i,k in zip(idx,l): pred[i]=f'{lab}{k}'
    return pred
def sweep(Ss, ts):
    for t in ts:
        pred=cc_at(Ss,t); p,r,a,b=pairs_pr(list(pred),list(ref)); print(f'  t {t:.3f}: P {p:.3f} R {r:.3f} groups {len(set(pred))}')
def run(name, fn, ts, imgs=T, **kw):
    t0=time.time(); Ss={}
    for lab in ['yes','no']:
        idx=np.where(labels==lab)[0]; Ss[lab]=(idx, maxsim(fn, imgs[idx], **kw))
    print(name, f'{time.time()-t0:.1f}s'); sweep(Ss, ts); return Ss
