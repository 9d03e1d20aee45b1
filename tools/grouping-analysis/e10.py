from ev import *
import pickle,sys
Ss=pickle.load(open(sys.argv[1],'rb'))
for k in [3,5,10,20]:
    Sk={}
    for lab,(idx,S) in Ss.items():
        S=S.copy(); np.fill_diagonal(S,-1)
        kth=-np.sort(-S,1)[:,k-1]
        mutual=(S>=kth[:,None])&(S>=kth[None,:])
        Sk[lab]=(idx,np.where(mutual,S,-1))
    print('mutual k',k); sweep(Sk,[0.85,0.8,0.75,0.7,0.65,0.6])
